package reap_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reap"
)

var _ webhook.Provider = (*reap.Provider)(nil)

func TestNew(t *testing.T) {
	primary, second, _ := testKeys(t)
	pub, pub2 := &primary.PublicKey, &second.PublicKey
	oddModulus := func(bits int) *big.Int {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		return n.Add(n, big.NewInt(1))
	}
	tooMany := make([]*rsa.PublicKey, reap.MaxKeys+1)
	for i := range tooMany {
		tooMany[i] = &rsa.PublicKey{N: new(big.Int).Add(oddModulus(2048), big.NewInt(int64(2*i))), E: 65537}
	}
	for _, tc := range []struct {
		name string
		cfg  reap.Config
		ok   bool
	}{
		{"one key", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{pub}}, true},
		{"two keys", reap.Config{Source: "reap-eu", PublicKeys: []*rsa.PublicKey{pub, pub2}}, true},
		{"MaxKeys keys", reap.Config{Source: "reap", PublicKeys: tooMany[:reap.MaxKeys]}, true},
		{"no keys", reap.Config{Source: "reap"}, false},
		{"too many keys", reap.Config{Source: "reap", PublicKeys: tooMany}, false},
		{"nil key", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{pub, nil}}, false},
		{"no modulus", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{{E: 65537}}}, false},
		{"same key twice", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{pub, pub2, {N: pub.N, E: pub.E}}}, false},
		{"1024-bit key", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{{N: oddModulus(1024), E: 65537}}}, false},
		{"8192-bit key", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{{N: oddModulus(8192), E: 65537}}}, true},
		{"16384-bit key", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{{N: oddModulus(16384), E: 65537}}}, false},
		{"even modulus", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}}}, false},
		{"exponent 1", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{{N: pub.N, E: 1}}}, false},
		{"even exponent", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{{N: pub.N, E: 65536}}}, false},
		{"exponent 3", reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{{N: pub.N, E: 3}}}, true},
		{"no source", reap.Config{PublicKeys: []*rsa.PublicKey{pub}}, false},
		{"dotted source", reap.Config{Source: "re.ap", PublicKeys: []*rsa.PublicKey{pub}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := reap.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: err = %v, want ok = %v", err, tc.ok)
			}
			if err != nil {
				return
			}
			if p.Source() != tc.cfg.Source || p.Kind() != reap.Kind {
				t.Fatalf("Source, Kind = %q, %q", p.Source(), p.Kind())
			}
		})
	}
}

func TestNewCopiesKeys(t *testing.T) {
	primary, _, _ := testKeys(t)
	pub := &rsa.PublicKey{N: new(big.Int).Set(primary.N), E: primary.E}
	p, err := reap.New(reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	pub.N.Add(pub.N, big.NewInt(2))
	pub.E = 3
	body := []byte(`{"eventType":"account_status_change"}`)
	if _, err := p.Verify(requestWith(body, sign(t, primary, body)), body, time.Time{}); err != nil {
		t.Fatalf("changing the caller's key changed the provider's: %v", err)
	}
}

func TestVerify(t *testing.T) {
	primary, second, stranger := testKeys(t)
	p := newProvider(t, primary, second)
	primaryID, secondID := keyID(t, primary), keyID(t, second)

	pretty := loadExample(t, "account_status_change.approved")
	compact, err := reap.CompactJSON(pretty)
	if err != nil {
		t.Fatal(err)
	}
	rawSig, err := base64.StdEncoding.DecodeString(sign(t, primary, pretty))
	if err != nil {
		t.Fatal(err)
	}

	// The same payload with other insignificant whitespace: its compact
	// form, and so a compact-form signature, is unchanged.
	reindented := bytes.ReplaceAll(pretty, []byte("\n  "), []byte("\n\t"))
	// A changed value: neither the raw body nor its compact form is signed.
	tampered := bytes.Replace(pretty, []byte(`"APPROVED"`), []byte(`"REJECTED"`), 1)
	if bytes.Equal(tampered, pretty) || bytes.Equal(reindented, pretty) {
		t.Fatal("example has not the expected shape")
	}

	// Bodies on which JSON.stringify and json.Compact disagree: a sender
	// signing JSON.stringify(JSON.parse(body)) verifies through the compact
	// reading; a signature over json.Compact's output does not.
	quirky := []byte("{\n  \"eventType\": \"account_status_change\",\n  \"n\": 1.0,\n  \"s\": \"caf\\u00e9 \\/ ok\",\n  \"k\": 1,\n  \"k\": 2,\n  \"2\": \"b\",\n  \"1\": \"a\"\n}\n")
	var goCompact bytes.Buffer
	if err := json.Compact(&goCompact, quirky); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		body    []byte
		headers []string
		scheme  string // "" means Verify must fail
		keyID   string
	}{
		{"raw, standard base64", pretty, []string{sign(t, primary, pretty)}, reap.SchemeRaw, primaryID},
		{"raw, unpadded", pretty, []string{base64.RawStdEncoding.EncodeToString(rawSig)}, reap.SchemeRaw, primaryID},
		{"raw, URL-safe", pretty, []string{base64.URLEncoding.EncodeToString(rawSig)}, reap.SchemeRaw, primaryID},
		{"raw, URL-safe unpadded", pretty, []string{base64.RawURLEncoding.EncodeToString(rawSig)}, reap.SchemeRaw, primaryID},
		{"raw, surrounding spaces", pretty, []string{" " + sign(t, primary, pretty) + "  "}, reap.SchemeRaw, primaryID},
		{"raw compact body", compact, []string{sign(t, primary, compact)}, reap.SchemeRaw, primaryID},
		{"compact JSON of a pretty body", pretty, []string{sign(t, primary, compact)}, reap.SchemeCompactJSON, primaryID},
		{"compact JSON of a re-indented body", reindented, []string{sign(t, primary, compact)}, reap.SchemeCompactJSON, primaryID},
		{"second key (rotation), raw", pretty, []string{sign(t, second, pretty)}, reap.SchemeRaw, secondID},
		{"second key (rotation), compact JSON", pretty, []string{sign(t, second, compact)}, reap.SchemeCompactJSON, secondID},
		{"JSON.stringify quirks", quirky, []string{signCompact(t, primary, quirky)}, reap.SchemeCompactJSON, primaryID},
		{"empty body", []byte{}, []string{sign(t, primary, nil)}, reap.SchemeRaw, primaryID},

		{"wrong key, raw", pretty, []string{sign(t, stranger, pretty)}, "", ""},
		{"wrong key, compact JSON", pretty, []string{sign(t, stranger, compact)}, "", ""},
		{"tampered body, raw signature", tampered, []string{sign(t, primary, pretty)}, "", ""},
		{"tampered body, compact signature", tampered, []string{sign(t, primary, compact)}, "", ""},
		{"json.Compact is not JSON.stringify", quirky, []string{sign(t, primary, goCompact.Bytes())}, "", ""},
		{"signature of another body", pretty, []string{sign(t, primary, []byte(`{}`))}, "", ""},
		{"not JSON, wrong signature", []byte("not json"), []string{sign(t, primary, []byte("not json!"))}, "", ""},
		{"bad base64", pretty, []string{"not base64 at all!"}, "", ""},
		{"base64 with a stray character", pretty, []string{"*" + sign(t, primary, pretty)[1:]}, "", ""},
		{"truncated signature", pretty, []string{base64.StdEncoding.EncodeToString(rawSig[:len(rawSig)-1])}, "", ""},
		{"signature one byte long", pretty, []string{"AA=="}, "", ""},
		{"signature longer than any key", pretty, []string{base64.StdEncoding.EncodeToString(append(rawSig, rawSig...))}, "", ""},
		{"signature with a flipped bit", pretty, []string{base64.StdEncoding.EncodeToString(flipBit(rawSig))}, "", ""},
		{"missing header", pretty, nil, "", ""},
		{"empty header", pretty, []string{""}, "", ""},
		{"two headers", pretty, []string{sign(t, primary, pretty), sign(t, primary, pretty)}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.Verify(requestWith(tc.body, tc.headers...), tc.body, time.Now())
			if tc.scheme == "" {
				webhooktest.CheckUnauthenticated(t, v, err, tc.headers...)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if want := (webhook.Verification{Scheme: tc.scheme, KeyID: tc.keyID}); v != want {
				t.Fatalf("Verify = %+v, want %+v", v, want)
			}
		})
	}
}

func flipBit(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)/2] ^= 0x10
	return out
}

// TestVerify4096 checks a 4096-bit key (the size of Reap's announced
// rotation) beside 2048-bit ones: only keys of the signature's size are
// tried, and the right one matches.
func TestVerify4096(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a 4096-bit key")
	}
	primary, _, _ := testKeys(t)
	big := key4096(t)
	p := newProvider(t, primary, big)
	body := loadExample(t, "account_status_change.rejected-retry")
	for _, tc := range []struct {
		name   string
		sig    string
		scheme string
	}{
		{"raw", sign(t, big, body), reap.SchemeRaw},
		{"compact JSON", signCompact(t, big, body), reap.SchemeCompactJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.Verify(requestWith(body, tc.sig), body, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if want := (webhook.Verification{Scheme: tc.scheme, KeyID: keyID(t, big)}); v != want {
				t.Fatalf("Verify = %+v, want %+v", v, want)
			}
		})
	}
	// A 2048-bit signature is not tried against the 4096-bit key, and vice
	// versa: the 2048-bit key still verifies its own.
	if _, err := p.Verify(requestWith(body, sign(t, primary, body)), body, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyNodeSigned verifies deliveries signed by Node.js's crypto
// (testdata/node/gen.js): over JSON.stringify of the parsed payload, as the
// seed's example implies, and over the body as written.
func TestVerifyNodeSigned(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "node", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	keys, err := reap.ParsePublicKeys(read("public.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := reap.New(reap.Config{Source: "reap", PublicKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	id, err := reap.KeyID(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	body := read("body.json")
	if got, err := reap.CompactJSON(body); err != nil || !bytes.Equal(got, read("compact.json")) {
		t.Fatalf("CompactJSON = %s, %v; want Node's %s", got, err, read("compact.json"))
	}
	for _, tc := range []struct{ sig, scheme string }{
		{"signature-compact.txt", reap.SchemeCompactJSON},
		{"signature-raw.txt", reap.SchemeRaw},
	} {
		t.Run(tc.sig, func(t *testing.T) {
			v, err := p.Verify(requestWith(body, string(read(tc.sig))), body, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if want := (webhook.Verification{Scheme: tc.scheme, KeyID: id}); v != want {
				t.Fatalf("Verify = %+v, want %+v", v, want)
			}
		})
	}
}

// TestSeedKeys parses the seed's staging and production keys, byte for
// byte in examples/reap, and configures both at once.
func TestSeedKeys(t *testing.T) {
	var all []*rsa.PublicKey
	var pems [][]byte
	for _, tc := range []struct{ file, id string }{
		{"reap-staging.pem", "sha256:0d2501a7"},
		{"reap-production.pem", "sha256:a44f699f"},
	} {
		b, err := os.ReadFile(filepath.Join(examplesDir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		pems = append(pems, b)
		keys, err := reap.ParsePublicKeys(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if len(keys) != 1 || keys[0].N.BitLen() != 2048 || keys[0].E != 65537 {
			t.Fatalf("%s: want one 2048-bit key with e=65537, got %d keys", tc.file, len(keys))
		}
		if id, err := reap.KeyID(keys[0]); err != nil || id != tc.id {
			t.Fatalf("%s: KeyID = %q, %v; want %q", tc.file, id, err, tc.id)
		}
		all = append(all, keys[0])
	}
	if _, err := reap.New(reap.Config{Source: "reap", PublicKeys: all}); err != nil {
		t.Fatalf("New with both seed keys: %v", err)
	}
	both, err := reap.ParsePublicKeys(bytes.Join(pems, []byte("\n# rotated in on 1 Oct\n")))
	if err != nil || len(both) != 2 || !both[0].Equal(all[0]) || !both[1].Equal(all[1]) {
		t.Fatalf("both keys in one input: %d keys, %v", len(both), err)
	}
}

func TestParsePublicKeys(t *testing.T) {
	primary, second, _ := testKeys(t)
	pkix := func(k *rsa.PrivateKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	pkcs1 := func(k *rsa.PrivateKey) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)})
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(primary)})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}})
	headerPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}})
	garbled := bytes.Replace(pkix(primary), []byte("MII"), []byte("M!I"), 1)
	corrupt := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not DER")})

	for _, tc := range []struct {
		name  string
		input [][]byte
		want  []*rsa.PrivateKey // nil: an error, which must contain errText
		errIn string
	}{
		{"PKIX", [][]byte{pkix(primary)}, []*rsa.PrivateKey{primary}, ""},
		{"PKCS #1", [][]byte{pkcs1(primary)}, []*rsa.PrivateKey{primary}, ""},
		{"two blocks in one input", [][]byte{append(pkix(primary), pkcs1(second)...)}, []*rsa.PrivateKey{primary, second}, ""},
		{"two inputs", [][]byte{pkcs1(second), pkix(primary)}, []*rsa.PrivateKey{second, primary}, ""},
		{"text around blocks", [][]byte{[]byte("staging key:\n" + string(pkix(primary)) + "\nend\n")}, []*rsa.PrivateKey{primary}, ""},
		{"CRLF line ends", [][]byte{bytes.ReplaceAll(pkix(primary), []byte("\n"), []byte("\r\n"))}, []*rsa.PrivateKey{primary}, ""},

		{"no input", nil, nil, "no input"},
		{"empty input", [][]byte{{}}, nil, "input 0 holds no PEM block"},
		{"not PEM", [][]byte{[]byte("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")}, nil, "input 0 holds no PEM block"},
		{"second input empty", [][]byte{pkix(primary), []byte("\n")}, nil, "input 1 holds no PEM block"},
		{"malformed block after a good one", [][]byte{append(pkix(primary), garbled...)}, nil, "input 0, block 2: malformed PEM block"},
		{"not DER", [][]byte{corrupt}, nil, `block 1: "PUBLIC KEY" block`},
		{"escaped line breaks", [][]byte{bytes.ReplaceAll(pkix(primary), []byte("\n"), []byte(`\n`))}, nil, `holds "\n" escapes`},
		{"EC key", [][]byte{ecPEM}, nil, "not an RSA public key"},
		{"private key", [][]byte{privPEM}, nil, "a private key"},
		{"certificate", [][]byte{certPEM}, nil, "not a certificate"},
		{"other block type", [][]byte{pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: []byte{1}})}, nil, `want "PUBLIC KEY" or "RSA PUBLIC KEY"`},
		{"PEM headers", [][]byte{headerPEM}, nil, "headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := reap.ParsePublicKeys(tc.input...)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("ParsePublicKeys succeeded with %d keys, want an error", len(got))
				}
				if !strings.Contains(err.Error(), tc.errIn) {
					t.Fatalf("error %q does not say %q", err, tc.errIn)
				}
				if strings.Contains(err.Error(), "MII") {
					t.Fatalf("error %q repeats key material", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !got[i].Equal(&tc.want[i].PublicKey) {
					t.Fatalf("key %d differs", i)
				}
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	primary, second, _ := testKeys(t)
	der, err := x509.MarshalPKIXPublicKey(&primary.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	want := "sha256:" + hex.EncodeToString(sum[:4])
	if got := keyID(t, primary); got != want {
		t.Fatalf("KeyID = %q, want %q", got, want)
	}
	// The PKCS #1 form of the key has the same id.
	fromPKCS1, err := reap.ParsePublicKeys(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&primary.PublicKey)}))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := reap.KeyID(fromPKCS1[0]); got != want {
		t.Fatalf("KeyID of the PKCS #1 form = %q, want %q", got, want)
	}
	if keyID(t, second) == want {
		t.Fatal("two keys share an id")
	}
}

func TestSign(t *testing.T) {
	primary, _, _ := testKeys(t)
	body := []byte(`{"eventType":"account_status_change"}`)
	sig := sign(t, primary, body)
	if sig != sign(t, primary, body) {
		t.Fatal("PKCS #1 v1.5 signatures are deterministic; Sign is not")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil {
		t.Fatalf("Sign is not standard base64: %v", err)
	}
	if len(raw) != primary.Size() {
		t.Fatalf("signature is %d bytes, want %d", len(raw), primary.Size())
	}
	if _, err := reap.Sign(nil, body); err == nil {
		t.Fatal("Sign with a nil key succeeded")
	}
}

func BenchmarkVerify(b *testing.B) {
	primary, second, _ := testKeys(b)
	p := newProvider(b, second, primary) // the match is the second key
	body := loadExample(b, "account_status_change.rejected-retry")
	for _, bc := range []struct {
		name string
		sig  string
	}{
		{"raw", sign(b, primary, body)},
		{"compact", signCompact(b, primary, body)},
		{"forged", sign(b, primary, []byte("forged"))}, // the worst case: 4 verifications
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := requestWith(body, bc.sig)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				_, err := p.Verify(r, body, time.Time{})
				if (err != nil) != (bc.name == "forged") {
					b.Fatal(err)
				}
			}
		})
	}
}
