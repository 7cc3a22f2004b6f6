package reewild

import (
	"encoding/json"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// Personal implements webhook.PersonalData. Every Reewild delivery is about
// the user it names (data.userID, data.profileID, data.user.id): its raw
// body holds their e-mail and names (user.enrolled, rewards.awarded) and
// what they bought; of the normalized payload, user.enrolled's email is
// personal. A delivery naming no user is about no one known.
func (p *Provider) Personal(d webhook.Delivery, n webhook.Normalized) webhook.Personal {
	var id string
	switch f := n.Fact.Data.(type) {
	case aggregate.StageRecorded:
		id = f.UserID
	case aggregate.UserEnrolled:
		id = f.UserID
	default:
		// Quarantined: the user as far as the body names one.
		var w wirePayload
		if payloadDecoder.Decode(d.Body, &w) == nil && w.Data != nil {
			var nested json.RawMessage
			if w.Data.User != nil {
				nested = w.Data.User.ID
			}
			id = jsonfield.FirstID(w.Data.UserID, w.Data.ProfileID, nested)
		}
	}
	if id == "" {
		return webhook.Personal{}
	}
	return webhook.Personal{Subject: webhook.Subject{Namespace: p.source, ID: id}}
}
