package reusely

import (
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// PersonalAttributes are the attributes of a Reusely offer event that are
// personal data: the parcel's tracking number. (The customer's name,
// e-mail and payout address are never copied out of the raw body.)
var PersonalAttributes = []string{"tracking_number"}

// Personal implements webhook.PersonalData. Reusely names the offer's
// customer only by personal data: the subject is the customer's e-mail
// (data.customer_email, trimmed and lower-cased), named by its pseudonym
// (an HMAC under the key store's pepper, never the address itself), so
// that one person's offers share one key. An offer without an e-mail is
// its own subject, "offer:{box_id}". The raw body (name, e-mail, PayPal
// address, tracking number) and PersonalAttributes are sealed.
func (p *Provider) Personal(d webhook.Delivery, n webhook.Normalized) webhook.Personal {
	env, err := decodeEnvelope(d.Body)
	if err != nil || env.data == nil {
		return webhook.Personal{}
	}
	if email, ok := jsonfield.String(env.data["customer_email"]); ok && email != "" {
		return webhook.Personal{
			Subject:    webhook.Subject{Namespace: p.source, ID: email, Pseudonymous: "email"},
			Attributes: PersonalAttributes,
		}
	}
	if box, ok := jsonfield.ID(env.data["box_id"]); ok {
		return webhook.Personal{Subject: webhook.Subject{Namespace: p.source, ID: "offer:" + box}, Attributes: PersonalAttributes}
	}
	return webhook.Personal{}
}
