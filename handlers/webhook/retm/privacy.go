package retm

import (
	"strings"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// PersonalAttributes are the attributes of a RETM customer event that are
// personal data.
var PersonalAttributes = []string{"name", "name_localized", "phone", "email"}

// Personal implements webhook.PersonalData. A customer event
// (customer.created|updated|deleted) is about the customer it carries
// (customer.id): its raw body and PersonalAttributes are sealed. RETM's
// other webhooks (invoices, redemptions, questions, error notices) name
// no customer in their published payloads and are stored in the clear.
func (p *Provider) Personal(d webhook.Delivery, n webhook.Normalized) webhook.Personal {
	var id string
	if f, ok := n.Fact.Data.(aggregate.EntityEventRecorded); ok {
		if f.Kind != aggregate.CategoryCustomer {
			return webhook.Personal{}
		}
		id = f.EntityID
	} else if n.Fact.Data == nil {
		var w wireBody
		if bodyDecoder.Decode(d.Body, &w) == nil && jsonfield.Present(w.Customer) {
			event, _ := jsonfield.String(w.Event)
			var c wireCustomer
			if strings.HasPrefix(event, "customer.") && customerDecoder.Decode(w.Customer, &c) == nil {
				id, _ = jsonfield.ID(c.ID)
			}
		}
	}
	if id == "" {
		return webhook.Personal{}
	}
	return webhook.Personal{Subject: webhook.Subject{Namespace: p.source, ID: id}, Attributes: PersonalAttributes}
}
