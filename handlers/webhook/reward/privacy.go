package reward

import (
	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// Personal implements webhook.PersonalData. A Reward delivery is about
// the user it names (data.user.id), in the user id namespace its credits
// count in (user_namespace, or the source itself): a Reward source that
// shares Reewild's user ids seals under the Reewild user's key, so that
// forgetting the user forgets both. Its raw body is personal; no
// normalized field is.
func (p *Provider) Personal(d webhook.Delivery, n webhook.Normalized) webhook.Personal {
	var id string
	switch f := n.Fact.Data.(type) {
	case aggregate.PointsCredited:
		id = f.UserID
	case aggregate.EntityEventRecorded:
		id = f.UserID
	default:
		var w wireEnvelope
		if envelopeDecoder.Decode(d.Body, &w) == nil && w.Data != nil && w.Data.User != nil {
			id, _ = jsonfield.ID(w.Data.User.ID)
		}
	}
	if id == "" {
		return webhook.Personal{}
	}
	return webhook.Personal{Subject: webhook.Subject{Namespace: p.balanceSource, ID: id}}
}
