package reap

import (
	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// PersonalAttributes are the attributes of a Reap account event that are
// personal data: what a moderator wrote about the person's verification
// and why it was refused. Status, event name and review type stay in the
// clear.
var PersonalAttributes = []string{AttrMessage, AttrModerationComment, AttrRejectLabels}

// Personal implements webhook.PersonalData. Reap verifies the identity of
// an account holder (know-your-customer): data.entityId names an account
// that is a person (or a business and the people behind it), so receiptd
// treats it as a subject. The raw body and PersonalAttributes are sealed.
func (p *Provider) Personal(d webhook.Delivery, n webhook.Normalized) webhook.Personal {
	var id string
	if f, ok := n.Fact.Data.(aggregate.EntityEventRecorded); ok {
		id = f.EntityID
	} else if top, err := jsonfield.Object(d.Body); err == nil {
		if data, _ := jsonfield.ObjectValue(top["data"]); data != nil {
			id, _ = jsonID(data["entityId"])
		}
	}
	if id == "" {
		return webhook.Personal{}
	}
	return webhook.Personal{Subject: webhook.Subject{Namespace: p.source, ID: id}, Attributes: PersonalAttributes}
}
