package retm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// The event types of RETM's payloads that carry an "event" field.
const (
	EventOrderCreated    = "order.created"
	EventOrderRefunded   = "order.refunded"
	EventCustomerCreated = "customer.created"
	EventCustomerUpdated = "customer.updated"
	EventCustomerDeleted = "customer.deleted"
)

// The event types receiptd names the webhooks RETM identifies only by their
// shape (they carry no "event" field). They are recorded as
// Normalized.EventType and EntityEventRecorded.EventType.
const (
	// EventRedeemReward: Redeem Reward, {reward_code, business_refrence,
	// branch_id, date, timestamp}.
	EventRedeemReward = "loyalty.redeem_reward"
	// EventCheckReward: Check Reward or Promotional Coupon (one shape,
	// {reward_code, business_refrence}): a synchronous question.
	EventCheckReward = "loyalty.check_reward"
	// EventError: the error webhook, {code, endpoint, message}, sent after
	// three failed deliveries to an endpoint.
	EventError = "webhook.error"
)

// invoiceStatuses are RETM's invoice status codes.
var invoiceStatuses = map[int64]string{
	1: "Closed",
	2: "Pending",
	3: "Active",
	4: "Refunded",
	5: "Void",
}

// Statuses of the entities whose events state no status of their own.
const (
	statusRedeemed = "redeemed"
	statusRejected = "rejected"
)

// Slot keys: a second delivery of one of these for the same entity with
// another body is a correction (an anomaly the views count).
const (
	slotOrderCreated    = EventOrderCreated
	slotCustomerCreated = EventCustomerCreated
	slotCustomerDeleted = EventCustomerDeleted
	slotRedeemed        = "redeemed"
)

// maxAttrLen bounds a descriptive attribute copied from the body (the raw
// body keeps it whole).
const maxAttrLen = 512

// noDecisionMessage and noDecisionError are the answer to a Check Reward or
// Promotional Coupon question: receiptd records the question but has no
// reward decision to give.
const (
	noDecisionMessage = "This reward code cannot be accepted: no reward decision is configured for this integration."
	noDecisionError   = "no reward decision configured"
)

// checkRewardReply is the 400 RETM's Check Reward and Promotional Coupon
// document for a refused code: {"data": [], "message": …, "errors": […]}.
var checkRewardReply = mustJSON(struct {
	Data    []string `json:"data"`
	Message string   `json:"message"`
	Errors  []string `json:"errors"`
}{Data: []string{}, Message: noDecisionMessage, Errors: []string{noDecisionError}})

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// wireBody holds the top-level fields normalization reads, each as its raw
// JSON text. Nested values whose shape RETM does not publish for every
// webhook (customer) stay raw until the webhook that has them is known, so
// that an unexpected type elsewhere never fails a delivery.
type wireBody struct {
	Event             json.RawMessage `json:"event"`
	EventType         json.RawMessage `json:"event_type"`
	BusinessRefrence  json.RawMessage `json:"business_refrence"`
	BusinessReference json.RawMessage `json:"business_reference"`
	Timestamp         json.RawMessage `json:"timestamp"`
	Reference         json.RawMessage `json:"reference"`

	InvoiceID      json.RawMessage `json:"invoice_id"`
	OrderRefrence  json.RawMessage `json:"order_refrence"`
	OrderReference json.RawMessage `json:"order_reference"`
	SaleID         json.RawMessage `json:"sale_id"`
	BranchID       json.RawMessage `json:"branch_id"`
	DeviceID       json.RawMessage `json:"device_id"`
	CreatedAt      json.RawMessage `json:"created_at"`
	TotalPrice     json.RawMessage `json:"total_price"`
	SubtotalPrice  json.RawMessage `json:"subtotal_price"`
	Tax            json.RawMessage `json:"tax"`
	Status         json.RawMessage `json:"status"`

	Customer json.RawMessage `json:"customer"`

	RewardCode json.RawMessage `json:"reward_code"`
	Date       json.RawMessage `json:"date"`

	Code     json.RawMessage `json:"code"`
	Endpoint json.RawMessage `json:"endpoint"`
	Message  json.RawMessage `json:"message"`
}

// The wire shapes are decoded by jsonfield.Decoder, as the sender's
// JavaScript reads the body: keys match exactly, the last of a repeated key
// wins.
var (
	bodyDecoder     = jsonfield.NewDecoder[wireBody]()
	customerDecoder = jsonfield.NewDecoder[wireCustomer]()
)

type wireCustomer struct {
	ID            json.RawMessage `json:"id"`
	Name          json.RawMessage `json:"name"`
	NameLocalized json.RawMessage `json:"name_localized"`
	Phone         json.RawMessage `json:"phone"`
	Email         json.RawMessage `json:"email"`
}

// delivery is one delivery being normalized.
type delivery struct {
	w    *wireBody
	sha  string
	body []byte
	// merchant is the business reference: the body's, or else the merchant
	// of the token that authenticated it.
	merchant string
}

// Normalize turns a verified RETM delivery into an
// aggregate.EntityEventRecorded on the stream of the order, customer,
// redemption, question or notice it is about. Check Reward and Promotional
// Coupon also get the Reply RETM waits for. See the package documentation
// for how each webhook is recognized and mapped.
func (p *Provider) Normalize(d webhook.Delivery) (webhook.Normalized, error) {
	var w wireBody
	decodeErr := bodyDecoder.Decode(d.Body, &w)
	event, eventIsString := jsonfield.String(w.Event)
	n := webhook.Normalized{EventType: event}
	if decodeErr != nil {
		return n, p.unnormalizable(event, "decode body: %v", decodeErr)
	}
	if trimmed := bytes.TrimLeft(d.Body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return n, p.unnormalizable(event, "body is not a JSON object")
	}
	if jsonfield.Present(w.Event) && !eventIsString {
		return n, p.unnormalizable(event, "event is not a string")
	}

	dv := delivery{w: &w, sha: d.BodySHA256, body: d.Body}
	if dv.sha == "" {
		sum := sha256.Sum256(d.Body)
		dv.sha = hex.EncodeToString(sum[:])
	}
	dv.merchant = jsonfield.FirstID(w.BusinessRefrence, w.BusinessReference)
	if dv.merchant == "" {
		dv.merchant = p.merchantByKeyID[d.Verification.KeyID]
	}

	var (
		fact aggregate.Fact
		err  error
	)
	switch {
	case event == EventOrderCreated || event == EventOrderRefunded:
		fact, err = p.invoice(dv, event)
	case event == EventCustomerCreated || event == EventCustomerUpdated || event == EventCustomerDeleted:
		fact, err = p.customer(dv, event)
	case strings.HasPrefix(event, "order."):
		fact, err = p.order(dv, event)
	case event != "":
		return n, fmt.Errorf("retm: normalize delivery to %q: event %.64q: %w", p.source, event, aggregate.ErrUnknownEvent)
	case jsonfield.Present(w.RewardCode) && (jsonfield.Present(w.BranchID) || jsonfield.Present(w.Date)):
		n.EventType = EventRedeemReward
		fact, err = p.redemption(dv)
	case jsonfield.Present(w.RewardCode):
		n.EventType = EventCheckReward
		fact = p.question(dv)
		n.Reply = &webhook.Reply{Status: http.StatusBadRequest, Body: checkRewardReply}
	case jsonfield.Present(w.Endpoint):
		n.EventType = EventError
		fact, err = p.notice(dv)
	default:
		return n, fmt.Errorf("retm: normalize delivery to %q: no event field, and neither a loyalty (reward_code) nor an error webhook (endpoint): %w", p.source, aggregate.ErrUnknownEvent)
	}
	if err != nil {
		return webhook.Normalized{EventType: n.EventType}, p.unnormalizable(n.EventType, "%v", err)
	}
	n.Fact = fact
	return n, nil
}

// unnormalizable builds the error of a delivery whose shape Normalize cannot
// map.
func (p *Provider) unnormalizable(eventType, format string, args ...any) error {
	return fmt.Errorf("retm: normalize %.64q delivery to %q: %s: %w", eventType, p.source, fmt.Sprintf(format, args...), aggregate.ErrUnnormalizable)
}

// record builds the EntityEventRecorded every RETM fact carries.
func (p *Provider) record(dv delivery, kind, id, eventType string, attrs map[string]string) aggregate.EntityEventRecorded {
	if dv.merchant != "" {
		attrs["business_reference"] = dv.merchant
	}
	return aggregate.EntityEventRecorded{
		Source:     p.source,
		Kind:       kind,
		EntityID:   id,
		EventType:  eventType,
		Attributes: attrs,
		BodySHA256: dv.sha,
		Raw:        dv.body,
	}
}

// fact wraps rec into the fact for its stream.
func (p *Provider) fact(rec aggregate.EntityEventRecorded, dedupe, slot string) aggregate.Fact {
	if len(rec.Attributes) == 0 {
		rec.Attributes = nil
	}
	return aggregate.Fact{
		Stream:     aggregate.StreamID(rec.Kind, p.source, rec.EntityID),
		Type:       aggregate.TypeEntityEventRecorded,
		Data:       rec,
		DedupeKey:  dedupe,
		SlotKey:    slot,
		OnConflict: aggregate.Correct,
	}
}

// invoice maps order.created and order.refunded: the invoice's status,
// total and references, on the order's stream.
func (p *Provider) invoice(dv delivery, event string) (aggregate.Fact, error) {
	w := dv.w
	id, err := jsonfield.RequiredID(w.InvoiceID, "invoice_id")
	if err != nil {
		return aggregate.Fact{}, err
	}
	attrs := make(map[string]string, 12)
	p.references(w, attrs)
	setID(attrs, "order_reference", w.OrderReference, w.OrderRefrence)
	setID(attrs, "sale_id", w.SaleID)
	setID(attrs, "branch_id", w.BranchID)
	setID(attrs, "device_id", w.DeviceID)
	setString(attrs, "created_at", w.CreatedAt)

	rec := p.record(dv, aggregate.CategoryOrder, id, event, attrs)
	total, _, ok, err := jsonfield.Decimal(w.TotalPrice, "total_price")
	if err != nil {
		return aggregate.Fact{}, err
	}
	if ok {
		rec.Amount = &total
		rec.Currency = p.currency
	}
	for _, f := range []struct {
		raw  json.RawMessage
		name string
	}{{w.SubtotalPrice, "subtotal_price"}, {w.Tax, "tax"}} {
		_, text, ok, err := jsonfield.Decimal(f.raw, f.name)
		if err != nil {
			return aggregate.Fact{}, err
		}
		if ok {
			attrs[f.name] = text
		}
	}
	if name, code := invoiceStatus(w.Status); name != "" {
		rec.Status = name
		if code != "" {
			attrs["status_code"] = code
		}
	}
	// The event's own time; an invoice's creation time is order.created's
	// too, but not a refund's.
	rec.OccurredAt = parseTime(w.Timestamp, p.loc)
	if rec.OccurredAt == nil && event == EventOrderCreated {
		rec.OccurredAt = parseTime(w.CreatedAt, p.loc)
	}
	if rec.Status != "" {
		rec.StatusAt = rec.OccurredAt
	}

	// A second order.created of one invoice with another body corrects the
	// first; refunds may be partial and several, so each stands alone.
	slot := ""
	if event == EventOrderCreated {
		slot = slotOrderCreated
	}
	return p.fact(rec, event+":"+id+":"+dv.sha, slot), nil
}

// order maps an order.* event other than the two invoice events. RETM does
// not publish these payloads: the fact names the order by invoice_id (the
// only order id RETM's published order.* payloads carry) and keeps the raw
// body; nothing else is read.
func (p *Provider) order(dv delivery, event string) (aggregate.Fact, error) {
	id, err := jsonfield.RequiredID(dv.w.InvoiceID, "invoice_id (the order id of RETM's order.* payloads)")
	if err != nil {
		return aggregate.Fact{}, err
	}
	attrs := make(map[string]string, 3)
	p.references(dv.w, attrs)
	rec := p.record(dv, aggregate.CategoryOrder, id, event, attrs)
	rec.OccurredAt = parseTime(dv.w.Timestamp, p.loc)
	return p.fact(rec, event+":"+id+":"+dv.sha, ""), nil
}

// customer maps customer.created, customer.updated and customer.deleted.
func (p *Provider) customer(dv delivery, event string) (aggregate.Fact, error) {
	if !jsonfield.Present(dv.w.Customer) || dv.w.Customer[0] != '{' {
		return aggregate.Fact{}, fmt.Errorf("no customer object")
	}
	var c wireCustomer
	if err := customerDecoder.Decode(dv.w.Customer, &c); err != nil {
		return aggregate.Fact{}, fmt.Errorf("customer: %v", err)
	}
	id, err := jsonfield.RequiredID(c.ID, "customer.id")
	if err != nil {
		return aggregate.Fact{}, err
	}
	attrs := make(map[string]string, 7)
	p.references(dv.w, attrs)
	setString(attrs, "name", c.Name)
	setString(attrs, "name_localized", c.NameLocalized)
	setString(attrs, "phone", c.Phone)
	setString(attrs, "email", c.Email)

	rec := p.record(dv, aggregate.CategoryCustomer, id, event, attrs)
	rec.Status = strings.TrimPrefix(event, "customer.")
	rec.OccurredAt = parseTime(dv.w.Timestamp, p.loc)
	rec.StatusAt = rec.OccurredAt

	slot := ""
	switch event {
	case EventCustomerCreated:
		slot = slotCustomerCreated
	case EventCustomerDeleted:
		slot = slotCustomerDeleted
	}
	return p.fact(rec, event+":"+id+":"+dv.sha, slot), nil
}

// redemption maps Redeem Reward: the reward code, redeemed at a branch.
func (p *Provider) redemption(dv delivery) (aggregate.Fact, error) {
	w := dv.w
	code, err := jsonfield.RequiredID(w.RewardCode, "reward_code")
	if err != nil {
		return aggregate.Fact{}, err
	}
	attrs := make(map[string]string, 3)
	setID(attrs, "branch_id", w.BranchID)
	setString(attrs, "date", w.Date)
	rec := p.record(dv, aggregate.CategoryRedemption, code, EventRedeemReward, attrs)
	rec.Status = statusRedeemed
	rec.OccurredAt = parseTime(w.Timestamp, p.loc)
	if rec.OccurredAt == nil {
		rec.OccurredAt = parseTime(w.Date, p.loc)
	}
	rec.StatusAt = rec.OccurredAt
	// A code redeemed twice with two bodies is an anomaly worth counting.
	return p.fact(rec, "redeem:"+code+":"+dv.sha, slotRedeemed), nil
}

// question maps Check Reward and Promotional Coupon: the question is
// recorded, with the answer given, on a stream of its own (by body hash: a
// retried question is a duplicate, and gets the same answer).
func (p *Provider) question(dv delivery) aggregate.Fact {
	attrs := make(map[string]string, 5)
	setID(attrs, "reward_code", dv.w.RewardCode)
	attrs["answer_status"] = strconv.Itoa(http.StatusBadRequest)
	attrs["answer"] = noDecisionError
	rec := p.record(dv, aggregate.CategoryQuestion, dv.sha, EventCheckReward, attrs)
	rec.Status = statusRejected
	rec.OccurredAt = parseTime(dv.w.Timestamp, p.loc)
	rec.StatusAt = rec.OccurredAt
	return p.fact(rec, "question:"+dv.sha, "")
}

// notice maps the error webhook, on the stream of the endpoint it is about.
func (p *Provider) notice(dv delivery) (aggregate.Fact, error) {
	w := dv.w
	endpoint, ok := jsonfield.String(w.Endpoint)
	if !ok || endpoint == "" {
		return aggregate.Fact{}, fmt.Errorf("endpoint is not a non-empty string")
	}
	sum := sha256.Sum256([]byte(endpoint))
	id := hex.EncodeToString(sum[:])
	attrs := make(map[string]string, 4)
	attrs["endpoint"] = jsonfield.Truncate(endpoint, maxAttrLen)
	if code, ok := jsonfield.ID(w.Code); ok {
		attrs["code"] = code
	}
	setString(attrs, "message", w.Message)
	rec := p.record(dv, aggregate.CategoryNotice, id, EventError, attrs)
	rec.OccurredAt = parseTime(w.Timestamp, p.loc)
	return p.fact(rec, "notice:"+dv.sha, ""), nil
}

// references sets the attributes every event webhook may carry.
func (p *Provider) references(w *wireBody, attrs map[string]string) {
	setID(attrs, "reference", w.Reference)
	setString(attrs, "event_type", w.EventType)
}

// invoiceStatus names an invoice status: its code (a number, or a string
// holding one) mapped by RETM's table, a code outside the table as sent,
// and a status sent as a name as sent. code is the code's text, if it was
// one.
func invoiceStatus(raw json.RawMessage) (name, code string) {
	text, ok := jsonfield.ID(raw)
	if !ok {
		return "", ""
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return jsonfield.Truncate(text, maxAttrLen), ""
	}
	if s, known := invoiceStatuses[n]; known {
		return s, text
	}
	return text, text
}

// setID sets attrs[name] to the first valid id among raws.
func setID(attrs map[string]string, name string, raws ...json.RawMessage) {
	if id := jsonfield.FirstID(raws...); id != "" {
		attrs[name] = id
	}
}

// setString sets attrs[name] to a non-empty string field, bounded.
func setString(attrs map[string]string, name string, raw json.RawMessage) {
	if s, ok := jsonfield.String(raw); ok && s != "" {
		attrs[name] = jsonfield.Truncate(s, maxAttrLen)
	}
}
