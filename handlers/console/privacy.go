package console

import (
	"mime"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// forgetData is the confirmation page of a forget.
type forgetData struct {
	Source, ID string
	Balance    *receiptdv1.Balance
	// Mismatch: the operator typed another id than the user's.
	Mismatch bool
}

// exportUser downloads everything receiptd holds about a user
// (PrivacyService.ExportSubject), as the JSON document the REST route
// answers, an attachment no browser renders.
func (c *Console) exportUser(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	doc, err := c.privacy.ExportSubject(apiContext(r), &receiptdv1.ExportSubjectRequest{Source: source, SubjectId: id})
	if err != nil {
		c.apiError(w, r, "export of user "+id, err)
		return
	}
	b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(doc)
	if err != nil {
		c.apiError(w, r, "export of user "+id, err)
		return
	}
	c.o.Logger.InfoContext(r.Context(), "console: exported a user's personal data", "principal", sessionFrom(r.Context()).principal, "source", source, "user", id)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fileName("export-" + source + "-" + id + ".json")}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// forgetPage asks the operator to confirm a forget: it cannot be undone.
func (c *Console) forgetPage(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	b, err := c.api.GetBalance(apiContext(r), &receiptdv1.GetBalanceRequest{UserId: id, Source: source})
	if err != nil {
		c.apiError(w, r, "user "+id, err)
		return
	}
	c.render(w, r, http.StatusOK, "forget", forgetData{Source: source, ID: id, Balance: b})
}

// forgetUser forgets a user (PrivacyService.ForgetSubject) once the
// operator has typed the user's id to confirm, then shows the user.
func (c *Console) forgetUser(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	if r.PostFormValue("confirm") != id {
		b, err := c.api.GetBalance(apiContext(r), &receiptdv1.GetBalanceRequest{UserId: id, Source: source})
		if err != nil {
			c.apiError(w, r, "user "+id, err)
			return
		}
		c.render(w, r, http.StatusBadRequest, "forget", forgetData{Source: source, ID: id, Balance: b, Mismatch: true})
		return
	}
	res, err := c.privacy.ForgetSubject(apiContext(r), &receiptdv1.ForgetSubjectRequest{Source: source, SubjectId: id})
	if err != nil {
		c.apiError(w, r, "forget user "+id, err)
		return
	}
	c.o.Logger.InfoContext(r.Context(), "console: forgot a user", "principal", sessionFrom(r.Context()).principal,
		"source", source, "user", id, "keys_destroyed", len(res.GetDestroyedKeyIds()), "position", res.GetPosition())
	http.Redirect(w, r, userHref(source, id)+"?min_position="+strconv.FormatUint(res.GetPosition(), 10), http.StatusSeeOther)
}
