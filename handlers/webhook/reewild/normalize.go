package reewild

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

// The field readers every provider shares (handlers/webhook/internal/jsonfield).
var (
	present      = jsonfield.Present
	jsonString   = jsonfield.String
	isJSONNumber = jsonfield.IsNumber
	jsonID       = jsonfield.ID
)

// maxIDLen bounds an id: it becomes part of a stream id or a dedupe key.
const maxIDLen = jsonfield.MaxIDLen

// decimalField is jsonfield.Decimal without the number's text.
func decimalField(raw json.RawMessage, name string) (decimal.Decimal, bool, error) {
	d, _, ok, err := jsonfield.Decimal(raw, name)
	return d, ok, err
}

// event is what an eventType means.
type event struct {
	// canonical is the dotted name of the seed ("rewards.awarded").
	canonical string
	// stage is the receipt stage it records; empty for user.enrolled.
	stage aggregate.Stage
}

// lookupEvent resolves an eventType as sent, with the underscore aliases
// the seed's prose uses (receipt_uploaded, receipt_completed for
// rewards.awarded, …).
func lookupEvent(t string) (event, bool) {
	switch t {
	case "user.enrolled", "user_enrolled":
		return event{"user.enrolled", ""}, true
	case "receipt.uploaded", "receipt_uploaded":
		return event{"receipt.uploaded", aggregate.StageUploaded}, true
	case "receipt.extracted", "receipt_extracted":
		return event{"receipt.extracted", aggregate.StageExtracted}, true
	case "receipt.enriched", "receipt_enriched":
		return event{"receipt.enriched", aggregate.StageEnriched}, true
	case "receipt.validated", "receipt_validated":
		return event{"receipt.validated", aggregate.StageValidated}, true
	case "receipt.scored", "receipt_scored":
		return event{"receipt.scored", aggregate.StageScored}, true
	case "rewards.awarded", "rewards_awarded", "receipt_completed", "receipt.completed":
		return event{"rewards.awarded", aggregate.StageAwarded}, true
	case "receipt.failed", "receipt_failed":
		return event{"receipt.failed", aggregate.StageFailed}, true
	}
	return event{}, false
}

// SlotEnrolled is the slot key of a user.enrolled fact; a receipt stage's is
// "stage:" followed by the stage (see aggregate.Fact.SlotKey).
const SlotEnrolled = "enrolled"

// The wire shapes: only the fields normalization reads, each kept as its raw
// JSON text so that a number is parsed from its text (never through float64)
// and a descriptive field of an unexpected type is omitted rather than
// failing the whole delivery. Everything else (items, applicationDetails…)
// is skipped by the decoder and kept in the raw body. They are decoded by
// jsonfield.Decoder, as the sender's JavaScript reads the body: keys match
// exactly ("TOTALPOINTS" is not totalPoints), the last of a repeated key
// wins, a repeated object is the last one whole.
type wirePayload struct {
	EventType json.RawMessage `json:"eventType"`
	Data      *wireData       `json:"data"`
}

type wireData struct {
	UserID           json.RawMessage  `json:"userID"`
	ProfileID        json.RawMessage  `json:"profileID"`
	ReceiptID        json.RawMessage  `json:"receiptID"`
	Email            json.RawMessage  `json:"email"`
	CreatedAt        json.RawMessage  `json:"createdAt"`
	UploadedAt       json.RawMessage  `json:"uploadedAt"`
	MerchantName     json.RawMessage  `json:"merchantName"`
	Brand            json.RawMessage  `json:"brand"`
	BusinessName     json.RawMessage  `json:"businessName"`
	Currency         json.RawMessage  `json:"currency"`
	Amount           json.RawMessage  `json:"amount"`
	SubTotal         json.RawMessage  `json:"subTotal"`
	ErrorMessage     json.RawMessage  `json:"errorMessage"`
	FailureStage     json.RawMessage  `json:"failureStage"`
	FailureStageName json.RawMessage  `json:"failureStageName"`
	User             *wireUser        `json:"user"`
	Transaction      *wireTransaction `json:"transaction"`
}

type wireUser struct {
	ID                json.RawMessage `json:"id"`
	AvailablePoints   json.RawMessage `json:"availablePoints"`
	LifetimePoints    json.RawMessage `json:"lifetimePoints"`
	NumOfTransactions json.RawMessage `json:"numOfTransactions"`
}

type wireTransaction struct {
	ExternalTransactionID json.RawMessage `json:"externalTransactionID"`
	TransactionID         json.RawMessage `json:"transactionID"`
	Brand                 json.RawMessage `json:"brand"`
	TotalAmount           json.RawMessage `json:"totalAmount"`
	TotalPoints           json.RawMessage `json:"totalPoints"`
	TotalBonusPoints      json.RawMessage `json:"totalBonusPoints"`
	TotalHealthPoints     json.RawMessage `json:"totalHealthPoints"`
	TotalCO2e             json.RawMessage `json:"totalCO2e"`
	TotalGreenProducts    json.RawMessage `json:"totalGreenProducts"`
}

var payloadDecoder = jsonfield.NewDecoder[wirePayload]()

// Normalize turns a verified Reewild delivery into a fact: user.enrolled
// into aggregate.UserEnrolled on the user's stream, every other event type
// into aggregate.StageRecorded on the receipt's stream. See the package
// documentation for the field mapping and what is required.
func (p *Provider) Normalize(d webhook.Delivery) (webhook.Normalized, error) {
	var w wirePayload
	decodeErr := payloadDecoder.Decode(d.Body, &w)
	// The event type may be known even if the body is not an object
	// throughout, for the quarantine record.
	eventType, _ := jsonString(w.EventType)
	n := webhook.Normalized{EventType: eventType}
	if decodeErr != nil {
		return n, p.unnormalizable(eventType, "decode body: %v", decodeErr)
	}
	if eventType == "" {
		return n, p.unnormalizable(eventType, "no eventType string")
	}
	ev, ok := lookupEvent(eventType)
	if !ok {
		return n, fmt.Errorf("reewild: normalize delivery to %q: event type %.64q: %w", p.source, eventType, aggregate.ErrUnknownEvent)
	}
	if w.Data == nil {
		return n, p.unnormalizable(eventType, "no data object")
	}
	sha := d.BodySHA256
	if sha == "" {
		sum := sha256.Sum256(d.Body)
		sha = hex.EncodeToString(sum[:])
	}
	var err error
	if ev.stage == "" {
		n.Fact, err = p.enrolled(ev, w.Data, sha, d.Body)
	} else {
		n.Fact, err = p.stage(ev, w.Data, sha, d.Body)
	}
	if err != nil {
		return n, p.unnormalizable(eventType, "%v", err)
	}
	return n, nil
}

// unnormalizable builds the error of a delivery whose shape Normalize cannot
// map.
func (p *Provider) unnormalizable(eventType, format string, args ...any) error {
	return fmt.Errorf("reewild: normalize %.64q delivery to %q: %s: %w", eventType, p.source, fmt.Sprintf(format, args...), aggregate.ErrUnnormalizable)
}

// enrolled maps user.enrolled.
func (p *Provider) enrolled(ev event, d *wireData, sha string, body []byte) (aggregate.Fact, error) {
	userID, err := requiredID(d.UserID, "data.userID")
	if err != nil {
		return aggregate.Fact{}, err
	}
	email, _ := jsonString(d.Email)
	return aggregate.Fact{
		Stream: aggregate.StreamID(aggregate.CategoryUser, p.source, userID),
		Type:   aggregate.TypeUserEnrolled,
		Data: aggregate.UserEnrolled{
			Source:     p.source,
			UserID:     userID,
			Email:      email,
			EnrolledAt: parseTime(d.CreatedAt),
			BodySHA256: sha,
			Raw:        body,
		},
		DedupeKey:  ev.canonical + ":" + userID + ":" + sha,
		SlotKey:    SlotEnrolled,
		OnConflict: aggregate.Correct,
	}, nil
}

// stage maps every receipt event.
func (p *Provider) stage(ev event, d *wireData, sha string, body []byte) (aggregate.Fact, error) {
	tx := d.Transaction
	if ev.stage == aggregate.StageAwarded && tx == nil {
		return aggregate.Fact{}, fmt.Errorf("no data.transaction object")
	}
	// Fields that only rewards.awarded nests.
	var userID, txBrand, txAmount json.RawMessage
	if d.User != nil {
		userID = d.User.ID
	}
	if tx != nil {
		txBrand, txAmount = tx.Brand, tx.TotalAmount
	}

	// rewards.awarded names the receipt by the transaction's external id;
	// a data.receiptID is taken if that is absent.
	idRaw, idName := d.ReceiptID, "data.receiptID"
	if ev.stage == aggregate.StageAwarded && (present(tx.ExternalTransactionID) || !present(d.ReceiptID)) {
		idRaw, idName = tx.ExternalTransactionID, "data.transaction.externalTransactionID"
	}
	receiptID, err := requiredID(idRaw, idName)
	if err != nil {
		return aggregate.Fact{}, err
	}

	rec := aggregate.StageRecorded{
		Source:     p.source,
		ReceiptID:  receiptID,
		UserID:     firstID(d.UserID, d.ProfileID, userID),
		Stage:      ev.stage,
		BodySHA256: sha,
		Merchant:   firstString(d.MerchantName, d.Brand, d.BusinessName, txBrand),
		Currency:   firstString(d.Currency),
		Raw:        body,
	}
	if ev.stage == aggregate.StageUploaded {
		rec.OccurredAt = parseTime(d.UploadedAt)
	}
	for _, f := range []struct {
		raw  json.RawMessage
		name string
	}{
		{d.Amount, "data.amount"},
		{d.SubTotal, "data.subTotal"},
		{txAmount, "data.transaction.totalAmount"},
	} {
		amount, ok, err := decimalField(f.raw, f.name)
		if err != nil {
			return aggregate.Fact{}, err
		}
		if ok {
			rec.Amount = &amount
			break
		}
	}

	switch ev.stage {
	case aggregate.StageAwarded:
		if rec.Award, err = award(tx, d.User); err != nil {
			return aggregate.Fact{}, err
		}
	case aggregate.StageFailed:
		rec.Failure = failure(d)
	}

	return aggregate.Fact{
		Stream:     aggregate.StreamID(aggregate.CategoryReceipt, p.source, receiptID),
		Type:       aggregate.TypeReceiptStageRecorded,
		Data:       rec,
		DedupeKey:  ev.canonical + ":" + receiptID + ":" + sha,
		SlotKey:    "stage:" + string(ev.stage),
		OnConflict: aggregate.Correct,
	}, nil
}

// award maps rewards.awarded's transaction totals and user snapshot.
// totalPoints is required: an award without it cannot be credited.
func award(tx *wireTransaction, user *wireUser) (*aggregate.Award, error) {
	a := &aggregate.Award{}
	a.TransactionID, _ = jsonID(tx.TransactionID)
	points, ok, err := decimalField(tx.TotalPoints, "data.transaction.totalPoints")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no data.transaction.totalPoints")
	}
	a.Points = points
	for _, f := range []struct {
		dst  *decimal.Decimal
		raw  json.RawMessage
		name string
	}{
		{&a.BonusPoints, tx.TotalBonusPoints, "data.transaction.totalBonusPoints"},
		{&a.HealthPoints, tx.TotalHealthPoints, "data.transaction.totalHealthPoints"},
		{&a.CO2e, tx.TotalCO2e, "data.transaction.totalCO2e"},
	} {
		if *f.dst, _, err = decimalField(f.raw, f.name); err != nil {
			return nil, err
		}
	}
	if a.GreenProducts, _, err = intField(tx.TotalGreenProducts, "data.transaction.totalGreenProducts"); err != nil {
		return nil, err
	}
	if user != nil && (present(user.AvailablePoints) || present(user.LifetimePoints) || present(user.NumOfTransactions)) {
		s := &aggregate.Snapshot{}
		if s.AvailablePoints, _, err = decimalField(user.AvailablePoints, "data.user.availablePoints"); err != nil {
			return nil, err
		}
		if s.LifetimePoints, _, err = decimalField(user.LifetimePoints, "data.user.lifetimePoints"); err != nil {
			return nil, err
		}
		if s.NumTransactions, _, err = intField(user.NumOfTransactions, "data.user.numOfTransactions"); err != nil {
			return nil, err
		}
		a.Snapshot = s
	}
	return a, nil
}

// failure maps receipt.failed's failure stage (code and name as sent) and
// message. The code is informational (stages are mapped by name), so a code
// that is not an integer is left at zero rather than failing the delivery.
func failure(d *wireData) *aggregate.Failure {
	f := &aggregate.Failure{
		Name:    firstString(d.FailureStageName),
		Message: firstString(d.ErrorMessage),
	}
	if code, ok, err := intField(d.FailureStage, "data.failureStage"); ok && err == nil {
		f.Code = code
	}
	return f
}

// firstString returns the first non-empty string among raws.
func firstString(raws ...json.RawMessage) string {
	for _, raw := range raws {
		if s, ok := jsonString(raw); ok && s != "" {
			return s
		}
	}
	return ""
}

// requiredID is jsonID for a field the delivery cannot be normalized
// without.
func requiredID(raw json.RawMessage, name string) (string, error) {
	id, ok := jsonID(raw)
	if ok {
		return id, nil
	}
	if !present(raw) {
		return "", fmt.Errorf("no %s", name)
	}
	return "", fmt.Errorf("%s is not an id (a non-empty string of at most %d printable bytes)", name, maxIDLen)
}

// firstID returns the first valid id among raws.
func firstID(raws ...json.RawMessage) string {
	for _, raw := range raws {
		if id, ok := jsonID(raw); ok {
			return id
		}
	}
	return ""
}

// intField parses an integer count; 38 and 38.0 are both 38.
func intField(raw json.RawMessage, name string) (n int64, ok bool, err error) {
	d, ok, err := decimalField(raw, name)
	if err != nil || !ok {
		return 0, ok, err
	}
	if !d.IsInteger() || d.Cmp(decimal.NewFromInt(math.MaxInt64)) > 0 || d.Cmp(decimal.NewFromInt(math.MinInt64)) < 0 {
		return 0, false, fmt.Errorf("%s: %s is not an integer", name, d)
	}
	return d.IntPart(), true, nil
}

// timeLayouts are the timestamp forms Reewild sends: RFC 3339 with a zone
// ("2025-11-07T19:12:34.567Z", "2025-10-08T00:00:00+00:00") and local times
// with up to nine fraction digits and no zone ("2025-11-21T15:00:45.1070976"),
// read as UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

// parseTime parses an optional timestamp; a missing or unparsable one is
// omitted (nil), never an error.
func parseTime(raw json.RawMessage) *time.Time {
	s, ok := jsonString(raw)
	if !ok || s == "" {
		return nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil && jsonfield.TimeInRange(t) {
			t = t.UTC()
			return &t
		}
	}
	return nil
}
