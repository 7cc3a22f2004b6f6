package console

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook/signer"
)

// sendChoice is one source and example payload the page offers.
type sendChoice struct {
	Value, Label string
}

type sendData struct {
	Choices  []sendChoice
	Unsigned []string // sources the page cannot sign for, and why
	Selected string
	Result   *sendResult
}

type sendResult struct {
	Source, Example string
	Status          string
	OK              bool
	Position        string
	Answer          string
	Body            string
	Href            string
	Err             string
}

// choices lists every (source, example) pair the page can sign.
func (c *Console) choices() ([]sendChoice, []string) {
	var out []sendChoice
	var unsigned []string
	for _, s := range c.o.Sources {
		if !canSign(s) {
			why := "no secret or token configured"
			if s.Kind == "reap" {
				why = "Reap signs with its private key, which receiptd does not hold (it has the public keys only): use receiptctl send with the key"
			}
			unsigned = append(unsigned, s.Name+" ("+s.Kind+"): "+why)
			continue
		}
		if c.o.Examples == nil {
			continue
		}
		names, _ := fs.Glob(c.o.Examples, s.Kind+"/*.json")
		for _, n := range names {
			out = append(out, sendChoice{Value: s.Name + "|" + n, Label: s.Name + " (" + s.Kind + "): " + strings.TrimSuffix(path.Base(n), ".json")})
		}
	}
	return out, unsigned
}

// signable are the kinds whose key the server holds to verify: a shared
// secret or token signs as well as it verifies. Reap's is a public key.
var signable = []string{signer.KindReewild, signer.KindReusely, signer.KindStandard, signer.KindReward, signer.KindRETM}

func canSign(s Source) bool {
	return len(s.Key) > 0 && slices.Contains(signable, s.Kind)
}

func (c *Console) sendPage(w http.ResponseWriter, r *http.Request) {
	choices, unsigned := c.choices()
	c.render(w, r, http.StatusOK, "send", sendData{Choices: choices, Unsigned: unsigned})
}

// send signs the chosen example with its source's scheme and POSTs it to
// this server's webhook route, then shows the answer.
func (c *Console) send(w http.ResponseWriter, r *http.Request) {
	choices, unsigned := c.choices()
	value := r.PostFormValue("choice")
	if !slices.ContainsFunc(choices, func(ch sendChoice) bool { return ch.Value == value }) {
		http.Error(w, "choose a source and an example payload", http.StatusBadRequest)
		return
	}
	name, file, _ := strings.Cut(value, "|")
	i := slices.IndexFunc(c.o.Sources, func(s Source) bool { return s.Name == name })
	src := c.o.Sources[i]
	res := &sendResult{Source: src.Name, Example: file}
	body, err := fs.ReadFile(c.o.Examples, file)
	if err == nil && src.Kind == "reusely" {
		body, err = freshTimestamp(body, time.Now())
	}
	if err == nil {
		res.Body = string(body)
		err = c.deliver(r, src, body, res)
	}
	if err != nil {
		res.Err = err.Error()
	}
	c.o.Logger.InfoContext(r.Context(), "console: sent a test event", "principal", sessionFrom(r.Context()).principal, "source", src.Name, "example", file, "status", res.Status)
	c.render(w, r, http.StatusOK, "send", sendData{Choices: choices, Unsigned: unsigned, Selected: value, Result: res})
}

func (c *Console) deliver(r *http.Request, src Source, body []byte, res *sendResult) error {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, strings.TrimRight(c.o.WebhookURL(), "/")+"/webhooks/"+src.Name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := sign(req.Header, src, body, time.Now()); err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("deliver to this receiptd: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	res.Status, res.OK, res.Answer = resp.Status, resp.StatusCode == http.StatusOK, strings.TrimSpace(string(answer))
	res.Position = resp.Header.Get("Receiptd-Position")
	if src.Kind == "reewild" {
		var env struct {
			Data struct {
				ReceiptID   string `json:"receiptID"`
				Transaction struct {
					ExternalTransactionID string `json:"externalTransactionID"`
				} `json:"transaction"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &env) == nil {
			if id := cmp.Or(env.Data.ReceiptID, env.Data.Transaction.ExternalTransactionID); id != "" {
				res.Href = receiptHref(src.Name, id)
			}
		}
	}
	return nil
}

// freshTimestamp sets a Reusely envelope's signed timestamp to now, as
// Reusely would when sending it: the example's own is far outside the
// source's tolerance.
func freshTimestamp(body []byte, now time.Time) ([]byte, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("a reusely example must be a JSON object: %w", err)
	}
	env["timestamp"], _ = json.Marshal(strconv.FormatInt(now.Unix(), 10))
	return json.MarshalIndent(env, "", "  ")
}

// sign adds the authentication src's provider sends with body, through
// signer, as receiptctl send does (see the package documentation for why
// the console signs at all). A Standard Webhooks message id names the
// console, so that the log shows where a test delivery came from.
func sign(h http.Header, src Source, body []byte, now time.Time) error {
	req := signer.Request{Kind: src.Kind, Key: src.Key, Algorithm: src.Algorithm, Encoding: src.Encoding, Now: now}
	if src.Kind == signer.KindStandard {
		sum := sha256.Sum256(body)
		req.MessageID = "msg_console_" + hex.EncodeToString(sum[:8]) + "_" + strconv.FormatInt(now.UnixNano(), 36)
	}
	if !canSign(src) {
		return errors.New("the console cannot sign for a " + src.Kind + " source")
	}
	return signer.Sign(h, body, req)
}
