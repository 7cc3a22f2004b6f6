package webhook

import (
	"net/http"
	"time"
)

// SchemeInsecure is the verification scheme recorded for a delivery that
// Insecure let through unverified.
const SchemeInsecure = "none-insecure"

// Insecure wraps p so that it accepts every delivery without verification
// (Verify always succeeds, with scheme SchemeInsecure); Source, Kind and
// Normalize are p's. For development only: receiptd uses it for a source
// configured with insecure: true, and warns when it does.
func Insecure(p Provider) Provider { return insecureProvider{p} }

type insecureProvider struct{ Provider }

func (insecureProvider) Verify(*http.Request, []byte, time.Time) (Verification, error) {
	return Verification{Scheme: SchemeInsecure}, nil
}

// Personal is p's (PersonalData), so that an insecure source's personal
// data is sealed as a verified one's would be; none for a provider that
// carries none.
func (p insecureProvider) Personal(d Delivery, n Normalized) Personal {
	if pd, ok := p.Provider.(PersonalData); ok {
		return pd.Personal(d, n)
	}
	return Personal{}
}
