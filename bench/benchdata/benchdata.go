// Package benchdata generates the bench's Reewild deliveries (the load
// that `go run ./bench` sends) for tests and benchmarks outside the bench's
// main package: the codec's and the embedded store's benchmarks measure the
// same payload shapes the load test sends.
//
// The bench (bench/payloads.go) sends exactly these: it shuffles, signs and
// re-delivers them, and this package is where they are made.
package benchdata

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// A Universe is a fixed, deterministic set of Reewild deliveries shaped like
// the seed's payloads (shared/seeds/000_…): Users user.enrolled deliveries
// and, for each of Receipts receipts, six deliveries: receipt.uploaded,
// .extracted, .enriched, .validated, .scored, then rewards.awarded (four
// receipts in five) or receipt.failed. Delivery k is a pure function of the
// seed and k, so nothing is held in memory but a permutation of the indices.
//
// Indices [0, Users) are the enrolments; receipt r's deliveries are
// Users + 6r … Users + 6r + 5.
type Universe struct {
	Seed     uint64
	Users    int
	Receipts int
}

// EventsPerReceipt is the number of deliveries of one receipt.
const EventsPerReceipt = 6

// Size is the number of distinct deliveries.
func (u Universe) Size() int { return u.Users + EventsPerReceipt*u.Receipts }

// Mix is SplitMix64: a cheap, well-spread hash of (seed, x). The bench uses
// it to sample deliveries reproducibly.
func Mix(seed, x uint64) uint64 {
	z := seed + x*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// UserID is a 6-character id like the seed's "027KO2".
func (u Universe) UserID(i int) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [6]byte
	x := uint64(i)
	for j := 5; j >= 0; j-- {
		b[j] = digits[x%36]
		x /= 36
	}
	return string(b[:])
}

// ReceiptID is a UUID-shaped id, unique per receipt.
func (u Universe) ReceiptID(r int) []byte {
	h := Mix(u.Seed, uint64(r)|1<<62)
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(r))
	binary.BigEndian.PutUint64(raw[8:], h)
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], raw[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], raw[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], raw[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], raw[8:10])
	out[23] = '-'
	hex.Encode(out[24:], raw[10:])
	return out[:]
}

// ReceiptUser is the user (an index for UserID) a receipt belongs to.
func (u Universe) ReceiptUser(r int) int { return int(Mix(u.Seed, uint64(r)|1<<61) % uint64(u.Users)) }

// awarded reports whether receipt r ends in rewards.awarded (else failed).
func (u Universe) awarded(r int) bool { return Mix(u.Seed, uint64(r)|1<<60)%5 != 0 }

// product is one line of a receipt, from the seed's examples and their kind.
type product struct {
	name, cleaned, ingredient string
	cents                     int // unit price
}

var products = []product{
	{"Tesco Maris Piper Potatoes 2kg", "Maris Piper Potatoes", "Potatoes, old, raw, flesh only", 180},
	{"Tesco Tenderstem Broccoli Spears 330g", "Tenderstem Broccoli Spears", "Broccoli, green, raw", 240},
	{"Tesco Fine Beans 200g", "Fine Beans", "Beans, green, raw", 130},
	{"Tesco British Semi Skimmed Milk 2.272L", "Semi Skimmed Milk", "Milk, semi-skimmed, pasteurised", 165},
	{"Tesco Free Range Large Eggs 12 Pack", "Free Range Large Eggs", "Eggs, chicken, whole, raw", 365},
	{"Tesco Wholemeal Bread 800g", "Wholemeal Bread", "Bread, wholemeal", 95},
	{"Tesco Bananas Loose", "Bananas", "Banana, flesh only, raw", 21},
	{"Tesco Red Lentils 1kg", "Red Lentils", "Lentils, red, split, dried, raw", 185},
	{"Tesco Chopped Tomatoes 400g", "Chopped Tomatoes", "Tomatoes, canned, whole contents", 55},
	{"Tesco Porridge Oats 1kg", "Porridge Oats", "Oats, rolled", 119},
	{"Tesco Carrots 1kg", "Carrots", "Carrot, raw", 59},
	{"Tesco Brown Onions 1kg", "Brown Onions", "Onion, raw", 79},
	{"Tesco Greek Style Natural Yogurt 1kg", "Greek Style Natural Yogurt", "Yogurt, Greek style, plain", 199},
	{"Tesco Chickpeas In Water 400g", "Chickpeas", "Chickpeas, canned, drained", 65},
	{"Tesco Spinach 240g", "Spinach", "Spinach, raw", 125},
	{"Tesco British Chicken Breast Fillets 640g", "Chicken Breast Fillets", "Chicken, breast, meat only, raw", 475},
}

var merchants = []string{"TESCO", "SAINSBURYS", "ASDA", "MORRISONS", "WAITROSE", "ALDI", "LIDL", "CO-OP"}

// items returns receipt r's lines: 3 to 7 products.
func (u Universe) items(r int) []int {
	h := Mix(u.Seed, uint64(r)|1<<59)
	n := 3 + int(h%5)
	out := make([]int, n)
	for i := range out {
		h = Mix(h, uint64(i))
		out[i] = int(h % uint64(len(products)))
	}
	return out
}

const appDetails = `{"id":"34F67CBEA3CD42CCADCB5C7B358ACBA8","name":"your_app_name","sourceType":2}`

// appendCents appends a non-negative amount in hundredths as a JSON number
// ("6.33", "1.8" style is not needed: two decimals are valid JSON numbers).
func appendCents(b []byte, c int) []byte {
	b = strconv.AppendInt(b, int64(c/100), 10)
	b = append(b, '.')
	if c%100 < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(c%100), 10)
}

func appendStr(b []byte, key, val string) []byte {
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `":"`...)
	b = append(b, val...)
	return append(b, `",`...)
}

func appendNum(b []byte, key string, num []byte) []byte {
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `":`...)
	b = append(b, num...)
	return append(b, ',')
}

// closeObj replaces a trailing comma with a closing brace.
func closeObj(b []byte) []byte {
	if b[len(b)-1] == ',' {
		b[len(b)-1] = '}'
		return b
	}
	return append(b, '}')
}

// Delivery appends the body of delivery k to b.
func (u Universe) Delivery(b []byte, k int) []byte {
	if k < u.Users {
		id := u.UserID(k)
		b = append(b, `{"eventType":"user.enrolled","data":{"applicationDetails":`...)
		b = append(b, appDetails...)
		b = append(b, ',')
		b = appendStr(b, "userID", id)
		b = appendStr(b, "email", "user-"+id+"@example.com")
		b = append(b, `"availablePoints":0,"lifetimePoints":0,"numOfTransactions":0,"totalCarbonScore":0,"totalGreenProducts":0,`...)
		b = appendStr(b, "createdAt", "2025-11-21T15:00:45.1070976")
		b = appendStr(b, "updatedAt", "2025-11-21T15:00:45.1071064")
		return closeObj(closeObj(b))
	}
	r, ev := (k-u.Users)/EventsPerReceipt, (k-u.Users)%EventsPerReceipt
	rid := u.ReceiptID(r)
	uid := u.UserID(u.ReceiptUser(r))
	h := Mix(u.Seed, uint64(r)|1<<58)
	merchant := merchants[h%uint64(len(merchants))]
	lines := u.items(r)
	subTotal := 0
	for _, p := range lines {
		subTotal += products[p].cents
	}
	var num [32]byte

	switch ev {
	case 0: // receipt.uploaded
		b = append(b, `{"eventType":"receipt.uploaded","data":{"applicationDetails":`...)
		b = append(b, appDetails...)
		b = append(b, ',')
		b = appendStr(b, "profileID", uid)
		b = appendNum(b, "amount", appendCents(num[:0], subTotal))
		b = appendStr(b, "merchantName", merchant)
		b = append(b, `"transactionId":"TXN-`...)
		b = strconv.AppendUint(b, h%1_000_000, 10)
		b = append(b, `",`...)
		b = appendStr(b, "transactionTimestamp", "2025-11-07T19:12:34.567Z")
		b = appendStr(b, "receiptID", string(rid))
		b = appendStr(b, "uploadedAt", "2025-11-21T15:05:02.5569459Z")
		return closeObj(closeObj(b))
	case 1, 2: // receipt.extracted, receipt.enriched
		if ev == 1 {
			b = append(b, `{"eventType":"receipt.extracted","data":{"applicationDetails":`...)
		} else {
			b = append(b, `{"eventType":"receipt.enriched","data":{"applicationDetails":`...)
		}
		b = append(b, appDetails...)
		b = append(b, ',')
		b = appendStr(b, "userID", uid)
		if ev == 1 {
			b = appendStr(b, "blobUri", "https://storage.example.com/receipts/"+strconv.FormatUint(h%1e12, 10)+".jpg")
		} else {
			b = append(b, `"accuracy":0.989,`...)
			b = appendStr(b, "brand", merchant)
			b = appendStr(b, "businessName", merchant)
		}
		b = append(b, `"country":"GBR","currency":"GBP","items":[`...)
		for i, p := range lines {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = appendStr(b, "description", products[p].name)
			b = append(b, `"quantity":1,`...)
			b = appendNum(b, "totalPrice", appendCents(num[:0], products[p].cents))
			b = append(b, `"accuracy":0.995,"cleanedName":"","category":""}`...)
		}
		b = append(b, `],`...)
		if ev == 2 {
			b = appendStr(b, "logo", "https://logo.clearbit.com/example.com")
		}
		b = appendStr(b, "merchantAddress", "")
		if ev == 1 {
			b = appendStr(b, "merchantName", merchant)
		}
		b = appendStr(b, "receiptID", string(rid))
		if ev == 1 {
			b = append(b, `"receiptSource":1,"receiptType":"Supplies",`...)
		}
		b = appendNum(b, "subTotal", appendCents(num[:0], subTotal))
		b = appendStr(b, "transactionDate", "2025-10-08T00:00:00+00:00")
		b = appendStr(b, "transactionTime", "11:47:00")
		return closeObj(closeObj(b))
	case 3: // receipt.validated
		b = append(b, `{"eventType":"receipt.validated","data":{"applicationDetails":`...)
		b = append(b, appDetails...)
		b = append(b, ',')
		b = appendStr(b, "userID", uid)
		b = append(b, `"country":"GBR","currency":"GBP",`...)
		b = appendStr(b, "receiptID", string(rid))
		b = append(b, `"receiptHash":"`...)
		b = strconv.AppendUint(b, h, 16)
		b = append(b, `",`...)
		b = appendStr(b, "transactionTimeStamp", "2025-10-08T11:47:00")
		return closeObj(closeObj(b))
	case 4: // receipt.scored
		b = append(b, `{"eventType":"receipt.scored","data":{"applicationDetails":`...)
		b = append(b, appDetails...)
		b = append(b, ',')
		b = appendStr(b, "userID", uid)
		b = append(b, `"currency":"GBP","items":[`...)
		for i, p := range lines {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":"`...)
			b = strconv.AppendUint(b, Mix(h, uint64(i))%0xffffffff, 16)
			b = append(b, `",`...)
			b = appendNum(b, "itemTotal", appendCents(num[:0], products[p].cents))
			b = appendStr(b, "name", products[p].name)
			b = appendNum(b, "pricePerUnit", appendCents(num[:0], products[p].cents))
			b = append(b, `"quantity":1,"partnerType":0,`...)
			b = appendStr(b, "matchedIngredientName", products[p].ingredient)
			b = closeObj(b)
		}
		b = append(b, `],`...)
		b = appendStr(b, "receiptID", string(rid))
		b = append(b, `"receiptSource":1,"receiptType":"Supplies",`...)
		b = appendNum(b, "subTotal", appendCents(num[:0], subTotal))
		b = appendStr(b, "transactionTimeStamp", "2025-10-08T11:47:00")
		return closeObj(closeObj(b))
	}
	if !u.awarded(r) {
		b = append(b, `{"eventType":"receipt.failed","data":{"applicationDetails":`...)
		b = append(b, appDetails...)
		b = append(b, ',')
		b = appendStr(b, "userID", uid)
		b = appendStr(b, "errorMessage", "Receipt validation failed")
		b = append(b, `"failureStage":5,"failureStageName":"FAILED_VALIDATE",`...)
		b = appendStr(b, "receiptID", string(rid))
		b = append(b, `"receiptSource":1,`...)
		b = appendStr(b, "receiptUrl", "https://storage.example.com/receipts/"+strconv.FormatUint(h%1e12, 10)+".jpg")
		return closeObj(closeObj(b))
	}
	// rewards.awarded: every item's points, health points and CO2e, and the
	// totals they add up to; the user's snapshot is plausible, not exact.
	b = append(b, `{"eventType":"rewards.awarded","data":{"applicationDetails":`...)
	b = append(b, appDetails...)
	b = append(b, `,"user":{`...)
	b = appendStr(b, "id", uid)
	b = appendStr(b, "email", "user-"+uid+"@example.com")
	b = append(b, `"firstName":"","lastName":"",`...)
	lifetime := int(h % 500_000)
	b = appendNum(b, "availablePoints", appendCents(num[:0], lifetime))
	b = appendNum(b, "lifetimePoints", appendCents(num[:0], lifetime))
	b = appendNum(b, "numOfTransactions", strconv.AppendInt(num[:0], int64(1+h%200), 10))
	b = closeObj(b)
	b = append(b, `,"transaction":{"applicationDetails":`...)
	b = append(b, appDetails...)
	b = append(b, `,"businessID":"13bfe2ca-759b-46b7-bc0b-76ac0d4784b2",`...)
	b = appendStr(b, "brand", merchant)
	b = appendStr(b, "externalTransactionID", string(rid))
	b = append(b, `"items":[`...)
	totalPoints, totalHealth, totalCO2 := 0, 0, 0 // hundredths; CO2e in thousandths
	for i, p := range lines {
		if i > 0 {
			b = append(b, ',')
		}
		ext := strconv.FormatUint(Mix(h, uint64(i))%0xffffffff, 16)
		health := products[p].cents * 6
		points := health * 2
		co2 := 300 + int(Mix(h, uint64(i)+100)%900)
		totalPoints += points
		totalHealth += health
		totalCO2 += co2
		b = append(b, '{')
		b = appendStr(b, "id", "R13bfe2ca__EXT"+ext)
		b = appendStr(b, "externalId", ext)
		b = appendStr(b, "name", products[p].name)
		b = appendNum(b, "pricePerUnit", appendCents(num[:0], products[p].cents))
		b = append(b, `"partnerType":0,"bonusPoints":0,`...)
		b = appendNum(b, "healthPoints", appendCents(num[:0], health))
		b = append(b, `"qty":1,`...)
		b = appendNum(b, "totalAmount", appendCents(num[:0], products[p].cents))
		b = append(b, `"carbonImpactRating":1,"healthImpactRating":1,"carbonDataSource":"agribalyse",`...)
		b = appendNum(b, "cO2ePerUnit", appendMilli(num[:0], co2))
		b = appendNum(b, "totalCO2e", appendMilli(num[:0], co2))
		b = appendNum(b, "totalPlanetPoints", appendCents(num[:0], points))
		b = appendStr(b, "matchedIngredientName", products[p].ingredient)
		b = appendStr(b, "cleanedName", products[p].cleaned)
		b = closeObj(b)
	}
	b = append(b, `],"partnerType":0,`...)
	b = appendNum(b, "totalAmount", appendCents(num[:0], subTotal))
	b = append(b, `"totalBonusPoints":0,`...)
	b = appendNum(b, "totalCO2e", appendMilli(num[:0], totalCO2))
	b = appendNum(b, "totalGreenProducts", strconv.AppendInt(num[:0], int64(len(lines)), 10))
	b = appendNum(b, "totalHealthPoints", appendCents(num[:0], totalHealth))
	b = appendNum(b, "totalPoints", appendCents(num[:0], totalPoints))
	b = append(b, `"transactionID":"`...)
	b = append(b, u.ReceiptID(r+1<<40)...)
	b = append(b, `","transactionSource":5}}}`...)
	return b
}

// appendMilli appends thousandths as a decimal ("0.599").
func appendMilli(b []byte, m int) []byte {
	b = strconv.AppendInt(b, int64(m/1000), 10)
	b = append(b, '.')
	frac := strconv.Itoa(m % 1000)
	for range 3 - len(frac) {
		b = append(b, '0')
	}
	return append(b, frac...)
}
