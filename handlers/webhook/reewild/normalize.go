package reewild

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

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
	eventType, _ := jsonfield.String(w.EventType)
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
	userID, err := jsonfield.RequiredID(d.UserID, "data.userID")
	if err != nil {
		return aggregate.Fact{}, err
	}
	email, _ := jsonfield.String(d.Email)
	return aggregate.Fact{
		Stream: aggregate.StreamID(aggregate.CategoryUser, p.source, userID),
		Type:   aggregate.TypeUserEnrolled,
		Data: aggregate.UserEnrolled{
			Source:     p.source,
			UserID:     userID,
			Email:      email,
			EnrolledAt: jsonfield.Time(d.CreatedAt, timeLayouts),
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
	if ev.stage == aggregate.StageAwarded && (jsonfield.Present(tx.ExternalTransactionID) || !jsonfield.Present(d.ReceiptID)) {
		idRaw, idName = tx.ExternalTransactionID, "data.transaction.externalTransactionID"
	}
	receiptID, err := jsonfield.RequiredID(idRaw, idName)
	if err != nil {
		return aggregate.Fact{}, err
	}

	rec := aggregate.StageRecorded{
		Source:     p.source,
		ReceiptID:  receiptID,
		UserID:     jsonfield.FirstID(d.UserID, d.ProfileID, userID),
		Stage:      ev.stage,
		BodySHA256: sha,
		Merchant:   jsonfield.FirstString(d.MerchantName, d.Brand, d.BusinessName, txBrand),
		Currency:   jsonfield.FirstString(d.Currency),
		Raw:        body,
	}
	if ev.stage == aggregate.StageUploaded {
		rec.OccurredAt = jsonfield.Time(d.UploadedAt, timeLayouts)
	}
	for _, f := range []struct {
		raw  json.RawMessage
		name string
	}{
		{d.Amount, "data.amount"},
		{d.SubTotal, "data.subTotal"},
		{txAmount, "data.transaction.totalAmount"},
	} {
		amount, _, ok, err := jsonfield.Decimal(f.raw, f.name)
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
	a.TransactionID, _ = jsonfield.ID(tx.TransactionID)
	points, _, ok, err := jsonfield.Decimal(tx.TotalPoints, "data.transaction.totalPoints")
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
		if *f.dst, _, _, err = jsonfield.Decimal(f.raw, f.name); err != nil {
			return nil, err
		}
	}
	if a.GreenProducts, _, err = intField(tx.TotalGreenProducts, "data.transaction.totalGreenProducts"); err != nil {
		return nil, err
	}
	if user != nil && (jsonfield.Present(user.AvailablePoints) || jsonfield.Present(user.LifetimePoints) || jsonfield.Present(user.NumOfTransactions)) {
		s := &aggregate.Snapshot{}
		if s.AvailablePoints, _, _, err = jsonfield.Decimal(user.AvailablePoints, "data.user.availablePoints"); err != nil {
			return nil, err
		}
		if s.LifetimePoints, _, _, err = jsonfield.Decimal(user.LifetimePoints, "data.user.lifetimePoints"); err != nil {
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
		Name:    jsonfield.FirstString(d.FailureStageName),
		Message: jsonfield.FirstString(d.ErrorMessage),
	}
	if code, ok, err := intField(d.FailureStage, "data.failureStage"); ok && err == nil {
		f.Code = code
	}
	return f
}

// intField parses an integer count; 38 and 38.0 are both 38.
func intField(raw json.RawMessage, name string) (n int64, ok bool, err error) {
	d, _, ok, err := jsonfield.Decimal(raw, name)
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
var timeLayouts = jsonfield.RFC3339OrLocal
