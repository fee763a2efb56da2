package ra

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

type requestView struct {
	ID           string           `json:"id"`
	Kind         string           `json:"kind"`
	Org          string           `json:"org"`
	Application  string           `json:"application,omitempty"`
	State        string           `json:"state"`
	Profile      string           `json:"profile,omitempty"`
	Subject      string           `json:"subject,omitempty"`
	Person       store.RAPerson   `json:"person"`
	Leader       *store.RALeader  `json:"leader,omitempty"`
	Serial       string           `json:"serial,omitempty"`
	TargetSerial string           `json:"target_serial,omitempty"`
	Cause        string           `json:"cause,omitempty"`
	Reason       string           `json:"reason,omitempty"`
	Steps        []store.RAStep   `json:"steps"`
	History      []store.RAAction `json:"history"`
	SubmittedBy  string           `json:"submitted_by"`
	ReceivedAt   time.Time        `json:"received_at"`
	DueAt        time.Time        `json:"due_at,omitzero"`
	CAReceivedAt time.Time        `json:"ca_received_at,omitzero"`
	DoneAt       time.Time        `json:"done_at,omitzero"`
	Overdue      bool             `json:"overdue"`
	// SigningSerial is the serial recorded before signing; Attempts and
	// LastError say how often execution failed and why.
	SigningSerial string `json:"signing_serial,omitempty"`
	Attempts      int    `json:"attempts,omitempty"`
	LastError     string `json:"last_error,omitempty"`
	// OldRevoked: a renewal's superseded certificate was revoked.
	OldRevoked bool `json:"old_revoked,omitempty"`
	// LDAPAccount is the directory account a directory access request asks for.
	LDAPAccount string `json:"ldap_account,omitempty"`
	// Escrow is what an encryption certificate or key recovery asks for.
	Escrow *store.RAEscrow `json:"escrow,omitempty"`
	// Token is what a USBKey unlock or replacement request is about.
	Token *tokenRequestView `json:"token,omitempty"`
}

// overdue: not finished by its deadline, or finished after it.
func (r *RA) overdue(rq *store.RARequest) bool {
	if rq.DueAt.IsZero() {
		return false // the CA's deadline has not started
	}
	if rq.DoneAt.IsZero() {
		return r.now().After(rq.DueAt)
	}
	return rq.DoneAt.After(rq.DueAt)
}

func (r *RA) view(rq *store.RARequest) requestView {
	v := requestView{
		ID: rq.ID, Kind: rq.Kind, Org: rq.OrgID, Application: rq.ApplicationID, State: rq.State, Profile: rq.Profile,
		Subject: rq.Subject, Person: rq.Person, Leader: rq.Leader, Cause: rq.Cause, Steps: rq.Steps, History: rq.History,
		SubmittedBy: rq.SubmittedBy, ReceivedAt: rq.ReceivedAt, DueAt: rq.DueAt, CAReceivedAt: rq.CAReceivedAt, DoneAt: rq.DoneAt, Overdue: r.overdue(rq),
	}
	if len(rq.Serial) > 0 {
		v.Serial = hex.EncodeToString(rq.Serial)
	}
	if len(rq.TargetSerial) > 0 {
		v.TargetSerial = hex.EncodeToString(rq.TargetSerial)
	}
	if len(rq.SigningSerial) > 0 {
		v.SigningSerial = hex.EncodeToString(rq.SigningSerial)
	}
	v.Attempts, v.LastError, v.OldRevoked = rq.Attempts, rq.LastError, rq.OldRevoked
	if rq.LDAPAccess != nil {
		v.LDAPAccount = rq.LDAPAccess.AccountID
	}
	v.Escrow = rq.Escrow
	if rq.Kind == KindRevoke {
		v.Reason = ca.Reason(rq.Reason).String()
	}
	if rq.Token != nil {
		v.Token = viewToken(rq.Token)
	}
	return v
}

// canSee decides whether a caller may see a request: staff all, an
// administrator their organisation's and its subordinates'.
func canSee(c *caller, rq *store.RARequest, org *store.Org) bool {
	return c.Admin == nil || rq.OrgID == c.Admin.OrgID || (org != nil && org.ParentID == c.Admin.OrgID)
}

func (r *RA) listRequests(w http.ResponseWriter, req *http.Request) error {
	limit, after, err := httpapi.Page(req)
	if err != nil {
		return err
	}
	q := req.URL.Query()
	c := callerFrom(req.Context())
	onlyOverdue := q.Get("overdue") == "true"
	out := []requestView{}
	next := ""
	orgs := map[string]*store.Org{}
	err = r.st.View(req.Context(), func(tx *store.Tx) error {
		return tx.EachRARequest(func(rq *store.RARequest) error {
			if after != "" && rq.ID <= after {
				return nil
			}
			if s := q.Get("state"); s != "" && rq.State != s {
				return nil
			}
			if k := q.Get("kind"); k != "" && rq.Kind != k {
				return nil
			}
			if o := q.Get("org"); o != "" && rq.OrgID != o {
				return nil
			}
			if onlyOverdue && (!rq.DoneAt.IsZero() || !r.overdue(rq)) {
				return nil
			}
			org, ok := orgs[rq.OrgID]
			if !ok {
				org, _ = tx.Org(rq.OrgID)
				orgs[rq.OrgID] = org
			}
			if !canSee(c, rq, org) {
				return nil
			}
			if len(out) == limit {
				next = out[len(out)-1].ID
				return httpapi.ErrPageFull
			}
			out = append(out, r.view(rq))
			return nil
		})
	})
	if err != nil && !errors.Is(err, httpapi.ErrPageFull) {
		return err
	}
	return httpapi.WritePage(w, out, next)
}

// visibleRequest reads a request the caller may see (404 otherwise, so an
// administrator cannot probe other organisations' request IDs).
func (r *RA) visibleRequest(tx *store.Tx, c *caller, id string) (*store.RARequest, error) {
	rq, err := r.readRequest(tx, id)
	if err != nil {
		return nil, err
	}
	org, _ := tx.Org(rq.OrgID)
	if !canSee(c, rq, org) {
		return nil, httpapi.NotFound("no request %s", id)
	}
	return rq, nil
}

func (r *RA) showRequest(w http.ResponseWriter, req *http.Request) error {
	var rq *store.RARequest
	err := r.st.View(req.Context(), func(tx *store.Tx) error {
		var err error
		rq, err = r.visibleRequest(tx, callerFrom(req.Context()), req.PathValue("id"))
		return err
	})
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, r.view(rq))
}

type applicationView struct {
	ID           string    `json:"id"`
	Org          string    `json:"org"`
	Kind         string    `json:"kind"`
	SubmittedBy  string    `json:"submitted_by"`
	SignerSerial string    `json:"signer_serial,omitempty"`
	Requests     []string  `json:"requests"`
	ReceivedAt   time.Time `json:"received_at"`
	Content      any       `json:"content"`
}

// showApplication returns an application, or with ?format=cms the signed
// document exactly as received (evidence: anyone can re-verify it with
// `openssl cms -verify`).
func (r *RA) showApplication(w http.ResponseWriter, req *http.Request) error {
	c := callerFrom(req.Context())
	var app *store.RAApplication
	err := r.st.View(req.Context(), func(tx *store.Tx) error {
		var err error
		app, err = tx.RAApplication(req.PathValue("id"))
		if err != nil || (c.Admin != nil && c.Admin.OrgID != app.OrgID) {
			return httpapi.NotFound("no application %s", req.PathValue("id"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if req.URL.Query().Get("format") == "cms" {
		if len(app.Signed) == 0 {
			return httpapi.NotFound("application %s was entered by RA staff and carries no signature", app.ID)
		}
		w.Header().Set("Content-Type", "application/pkcs7-mime; smime-type=signed-data")
		w.Header().Set("Content-Disposition", `attachment; filename="`+app.ID+`.p7m"`)
		_, err := w.Write(app.Signed)
		return err
	}
	v := applicationView{ID: app.ID, Org: app.OrgID, Kind: app.Kind, SubmittedBy: app.SubmittedBy, Requests: app.Requests, ReceivedAt: app.ReceivedAt, Content: json.RawMessage(app.Content)}
	if len(app.SignerSerial) > 0 {
		v.SignerSerial = hex.EncodeToString(app.SignerSerial)
	}
	return httpapi.WriteJSON(w, http.StatusOK, v)
}

// downloadRequestCert hands the certificate of an issued request to the
// organisation's administrator; their first download delivers it.
func (r *RA) downloadRequestCert(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	c := callerFrom(ctx)
	format, err := certFormat(req)
	if err != nil {
		return err
	}
	var cert *store.Cert
	delivered := ""
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		delivered = ""
		rq, err := r.visibleRequest(tx, c, req.PathValue("id"))
		if err != nil {
			return err
		}
		if c.Admin != nil && c.Admin.OrgID != rq.OrgID {
			return httpapi.Forbidden("the certificate of request %s is delivered to %s's administrators", rq.ID, rq.OrgID)
		}
		if len(rq.Serial) == 0 {
			return httpapi.Conflict("request %s is %s; it has no certificate to download", rq.ID, rq.State)
		}
		if cert, err = tx.Cert(rq.Serial); err != nil {
			return err
		}
		if c.Admin == nil || rq.State != StateIssued {
			return nil
		}
		if err := r.move(rq, StateDelivered, c.ID(), "deliver", "downloaded by the administrator"); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		delivered = rq.ID
		return log(audit.Record{Actor: c.ID(), Action: "ra.deliver", Object: "request/" + rq.ID, Details: map[string]string{"serial": cert.SerialHex()}})
	})
	if err != nil {
		return err
	}
	if delivered != "" {
		r.retire(ctx, delivered)
	}
	return r.writeCert(w, cert, format)
}

// downloadOnce serves a one-time download link: the token is the
// credential, and it is deleted in the transaction that reads it.
func (r *RA) downloadOnce(w http.ResponseWriter, req *http.Request) error {
	format, err := certFormat(req)
	if err != nil {
		return err
	}
	token := req.PathValue("token")
	var cert *store.Cert
	var d download
	delivered := ""
	err = r.update(req.Context(), func(tx *store.Tx, log func(audit.Record) error) error {
		b, err := tx.Blob(nsDownload, token)
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("this download link is unknown or was used already")
		} else if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		if err := tx.DeleteBlob(nsDownload, token); err != nil {
			return err
		}
		if r.now().After(d.Expires) {
			return httpapi.Errorf(http.StatusGone, "expired", "this download link expired at %s", d.Expires.Format(time.RFC3339))
		}
		serial, _ := hex.DecodeString(d.Serial)
		if cert, err = tx.Cert(serial); err != nil {
			return err
		}
		// The link's download delivers the certificate, as the
		// administrator's download of the request does.
		delivered = ""
		if rq, err := tx.RARequest(d.Request); err == nil && rq.State == StateIssued {
			if err := r.move(rq, StateDelivered, "link", "deliver", "downloaded through the one-time link"); err != nil {
				return err
			}
			if err := r.put(tx, rq); err != nil {
				return err
			}
			delivered = rq.ID
		}
		return log(audit.Record{Actor: "link", Action: "ra.download", Object: "request/" + d.Request, Details: map[string]string{"serial": d.Serial}})
	})
	if err != nil {
		var ae *httpapi.Error
		if errors.As(err, &ae) && ae.Status == http.StatusGone {
			// The expired token is deleted all the same.
			_ = r.st.Update(req.Context(), func(tx *store.Tx) error { return tx.DeleteBlob(nsDownload, token) })
		}
		return err
	}
	if delivered != "" {
		r.retire(req.Context(), delivered)
	}
	return r.writeCert(w, cert, format)
}

func certFormat(req *http.Request) (string, error) {
	f := req.URL.Query().Get("format")
	switch f {
	case "":
		return "pem", nil
	case "pem", "der", "p7":
		return f, nil
	}
	return "", httpapi.BadRequest("format %q is not one of pem, der, p7", f)
}

// writeCert writes a certificate as PEM (leaf then CA), DER (leaf) or a
// degenerate PKCS#7 SignedData holding the chain.
func (r *RA) writeCert(w http.ResponseWriter, c *store.Cert, format string) error {
	iss := r.issuerCert(c.Issuer)
	name := c.SerialHex()
	w.Header().Set("Cache-Control", "no-store")
	switch format {
	case "der":
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.cer"`)
		_, err := w.Write(c.DER)
		return err
	case "p7":
		chain := append([]byte{}, c.DER...)
		if iss != nil {
			chain = append(chain, iss.Raw...)
		}
		p7, err := pkcs7.DegenerateCertificate(chain)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/pkcs7-mime; smime-type=certs-only")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.p7b"`)
		_, err = w.Write(p7)
		return err
	}
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
	if iss != nil {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: iss.Raw})
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err := w.Write(b.Bytes())
	return err
}

func parseTime(key, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, httpapi.BadRequest("%s %q is not an RFC 3339 time or a YYYY-MM-DD date", key, s)
}

// queryCerts finds certificates by serial, subject, CN, organisation, status
// and expiry window. An administrator sees only their organisation's.
func (r *RA) queryCerts(w http.ResponseWriter, req *http.Request) error {
	limit, after, err := httpapi.Page(req)
	if err != nil {
		return err
	}
	q := req.URL.Query()
	c := callerFrom(req.Context())
	org := q.Get("org")
	if c.Admin != nil {
		if org != "" && org != c.Admin.OrgID {
			return httpapi.Forbidden("you may query only the certificates of %s", c.Admin.OrgID)
		}
		org = c.Admin.OrgID
	}
	status := q.Get("status")
	if status != "" && status != "valid" && status != "revoked" && status != "expired" {
		return httpapi.BadRequest("status %q is not one of valid, revoked, expired", status)
	}
	var from, to time.Time
	if s := q.Get("expires_after"); s != "" {
		if from, err = parseTime("expires_after", s); err != nil {
			return err
		}
	}
	if s := q.Get("expires_before"); s != "" {
		if to, err = parseTime("expires_before", s); err != nil {
			return err
		}
	}
	var serial []byte
	if s := q.Get("serial"); s != "" {
		if serial, err = httpapi.ParseSerial(s); err != nil {
			return err
		}
	}
	out := []httpapi.CertView{}
	next := ""
	skipping := after != ""
	err = r.st.View(req.Context(), func(tx *store.Tx) error {
		collect := func(ct *store.Cert) error {
			if skipping {
				skipping = ct.SerialHex() != after
				return nil
			}
			if serial != nil && !bytes.Equal(ct.Serial, serial) {
				return nil
			}
			if s := q.Get("subject"); s != "" && !strings.EqualFold(ct.Subject, s) {
				return nil
			}
			if s := q.Get("cn"); s != "" && !strings.EqualFold(ct.CommonName, s) {
				return nil
			}
			if status != "" && httpapi.CertStatus(ct, r.now()) != status {
				return nil
			}
			if (!from.IsZero() && ct.NotAfter.Before(from)) || (!to.IsZero() && !ct.NotAfter.Before(to)) {
				return nil
			}
			owner, _ := tx.CertOrg(ct.Serial)
			if org != "" && owner != org {
				return nil
			}
			if len(out) == limit {
				next = out[len(out)-1].Serial
				return httpapi.ErrPageFull
			}
			o := httpapi.CertViewOptions{Now: r.now(), Org: owner}
			if by, err := tx.SupersededBy(ct.Serial); err == nil {
				o.SupersededBy = by
			}
			v := httpapi.ViewCert(ct, o)
			out = append(out, v)
			return nil
		}
		switch {
		case serial != nil:
			ct, err := tx.Cert(serial)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			return collect(ct)
		case org != "":
			return tx.CertsByOrg(org, collect)
		case q.Get("subject") != "":
			return tx.CertsBySubject(q.Get("subject"), collect)
		case q.Get("cn") != "":
			return tx.CertsByCommonName(q.Get("cn"), collect)
		case !to.IsZero():
			return tx.CertsExpiring(from, to, collect)
		}
		return tx.EachCert(collect)
	})
	if err != nil && !errors.Is(err, httpapi.ErrPageFull) {
		return err
	}
	return httpapi.WritePage(w, out, next)
}

// downloadCert serves one certificate as PEM, DER or PKCS#7 to staff and to
// the administrators of the organisation it was issued to.
func (r *RA) downloadCert(w http.ResponseWriter, req *http.Request) error {
	serial, err := httpapi.ParseSerial(req.PathValue("serial"))
	if err != nil {
		return err
	}
	format, err := certFormat(req)
	if err != nil {
		return err
	}
	c := callerFrom(req.Context())
	var cert *store.Cert
	err = r.st.View(req.Context(), func(tx *store.Tx) error {
		cert, err = tx.Cert(serial)
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("no certificate with serial %x", serial)
		} else if err != nil {
			return err
		}
		if c.Admin != nil {
			if owner, _ := tx.CertOrg(serial); owner != c.Admin.OrgID {
				return httpapi.NotFound("no certificate with serial %x", serial)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.writeCert(w, cert, format)
}

func (r *RA) runReminders(w http.ResponseWriter, req *http.Request) error {
	res, err := r.RunReminders(req.Context())
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, res)
}
