package token_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm4"

	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/signer/pkcs11"
	"github.com/certcenter/certcenter/token"
)

type tokenView struct {
	Serial       string   `json:"serial"`
	Model        string   `json:"model"`
	State        string   `json:"state"`
	Holder       string   `json:"holder"`
	Org          string   `json:"org"`
	Certificates []string `json:"certificates"`
}

type personalised struct {
	Token      tokenView `json:"token"`
	Credential struct {
		Form     string `json:"form"`
		SOPIN    string `json:"so_pin"`
		AdminKey string `json:"admin_key"`
	} `json:"credential"`
}

type authorisation struct {
	Form     string `json:"form"`
	SOPIN    string `json:"so_pin"`
	Response string `json:"response"`
	Warning  string `json:"warning"`
}

// keyOnToken makes a signing key on a SoftHSM2 token (logged in with pin)
// and returns a CSR signed by it: the key never leaves the token.
func keyOnToken(t *testing.T, module, label, pin, name string) string {
	t.Helper()
	ctx := context.Background()
	p, err := pkcs11.Open(ctx, pkcs11.Options{Module: module, TokenLabel: label, PIN: pin, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	k, err := p.Generate(ctx, name, signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return csrPEM(t, k, name)
}

// signOnToken signs with the token's key logged in with pin and checks the
// signature against the certificate.
func signOnToken(t *testing.T, module, label, pin, name, certPEM string) {
	t.Helper()
	ctx := context.Background()
	p, err := pkcs11.Open(ctx, pkcs11.Options{Module: module, TokenLabel: label, PIN: pin, PoolSize: 1})
	if err != nil {
		t.Fatalf("logging in to %s with the new PIN: %v", label, err)
	}
	defer p.Close()
	k, err := p.Signer(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("signed after the unlock"))
	sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(certPEM))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(cert.PublicKey.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("the token's signature does not verify with the certificate")
	}
}

func tokenSerials(t *testing.T, module string) map[string]string {
	t.Helper()
	m, err := token.Serials(module)
	if err != nil {
		t.Fatal(err)
	}
	bySerial := map[string]string{}
	for serial, label := range m {
		bySerial[label] = serial
	}
	return bySerial
}

// TestUSBKeyLifecycle is the USBKey story end to end on SoftHSM2 tokens:
// stock, personalisation (the derived SO PIN set on the token), queries and
// diagnostics, a PIN locked by wrong tries, an unlock request approved in 2
// working days, the authorisation fetched once and used as the client
// command does (C_Login as SO, C_InitPIN), a signature with the new PIN;
// then a lost token replaced, confirmed by a support engineer; and the bad
// input, refused with a reason, audited, changing nothing.
func TestUSBKeyLifecycle(t *testing.T) {
	mod := softhsm(t, "usbkey-1", "usbkey-2")
	w := newWorld(t)
	serials := tokenSerials(t, mod)
	s1, s2 := serials["usbkey-1"], serials["usbkey-2"]
	if s1 == "" || s2 == "" {
		t.Fatalf("token serials %v", serials)
	}

	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "hosp", "name": "City Hospital"}, nil)
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "clinic", "name": "Clinic"}, nil)
	hadm := w.enrol("/api/v1/ra/orgs/hosp/admins", "hadm", "")
	cadm := w.enrol("/api/v1/ra/orgs/clinic/admins", "cadm", "")
	officer := w.enrol("/api/v1/ra/staff", "officer", "ra_officer")
	engineer := w.enrol("/api/v1/ra/staff", "eng", "support_engineer")

	// The holder's signing key is made on the USBKey.
	csr := keyOnToken(t, mod, "usbkey-1", transportPIN, "holder-sign")
	certSerial := w.issue(officer, "hosp", "Zhang San", "personal-signing", csr)

	// Stock, then personalisation.
	for _, s := range []string{s1, s2} {
		w.must(officer, 201, "POST", "/api/v1/tokens", map[string]string{"serial": s, "model": "pkcs11"}, nil)
	}
	w.refused(officer, 409, "already in the inventory", "POST", "/api/v1/tokens", map[string]string{"serial": s1, "model": "pkcs11"})
	w.refused(officer, 400, "tokens.models", "POST", "/api/v1/tokens", map[string]string{"serial": "X1", "model": "nokia"})
	w.refused(cadm, 403, "", "POST", "/api/v1/tokens", map[string]string{"serial": "X1", "model": "pkcs11"})
	var per personalised
	w.must(officer, 200, "POST", "/api/v1/tokens/"+s1+"/personalise", map[string]any{"org": "hosp", "certificates": []string{certSerial}}, &per)
	if per.Token.State != "issued" || per.Token.Org != "hosp" || per.Token.Holder == "" || per.Credential.Form != "so_pin" || len(per.Credential.SOPIN) != token.SOPINLength {
		t.Fatalf("personalised %+v", per)
	}
	holder := per.Token.Holder
	soPIN := per.Credential.SOPIN
	dev := token.Device{Module: mod, Serial: s1}
	if err := dev.SetSOPIN(transportSOPIN, soPIN); err != nil {
		t.Fatal(err)
	}
	w.refused(officer, 409, "only a token in stock", "POST", "/api/v1/tokens/"+s1+"/personalise", map[string]any{"org": "hosp", "certificates": []string{certSerial}})
	w.refused(officer, 409, "is on token "+s1, "POST", "/api/v1/tokens/"+s2+"/personalise", map[string]any{"org": "hosp", "certificates": []string{certSerial}})
	w.refused(officer, 400, "not issued to organisation clinic", "POST", "/api/v1/tokens/"+s2+"/personalise", map[string]any{"org": "clinic", "certificates": []string{certSerial}})
	if strings.Contains(w.logs.String(), soPIN) {
		t.Fatal("the derived SO PIN is in the server's log")
	}

	// Queries by serial, holder, organisation; another organisation's
	// administrator does not see the token.
	var tv tokenView
	w.must(hadm, 200, "GET", "/api/v1/tokens/"+s1, nil, &tv)
	if tv.State != "issued" || len(tv.Certificates) != 1 || tv.Certificates[0] != certSerial {
		t.Fatalf("token %+v", tv)
	}
	w.refused(cadm, 404, "not in the inventory", "GET", "/api/v1/tokens/"+s1, nil)
	var page struct{ Items []tokenView }
	w.must(officer, 200, "GET", "/api/v1/tokens?holder="+holder, nil, &page)
	if len(page.Items) != 1 || page.Items[0].Serial != s1 {
		t.Fatalf("by holder: %+v", page.Items)
	}
	w.must(hadm, 200, "GET", "/api/v1/tokens", nil, &page)
	if len(page.Items) != 1 {
		t.Fatalf("the hospital's administrator lists %+v", page.Items)
	}
	w.must(officer, 200, "GET", "/api/v1/tokens?state=in_stock", nil, &page)
	if len(page.Items) != 1 || page.Items[0].Serial != s2 {
		t.Fatalf("in stock: %+v", page.Items)
	}
	w.refused(cadm, 403, "not of hosp", "GET", "/api/v1/tokens?org=hosp", nil)
	var diag struct {
		Token *tokenView `json:"token"`
	}
	w.must(w.admin, 200, "GET", "/api/v1/diagnostics/certificates/"+certSerial, nil, &diag)
	if diag.Token == nil || diag.Token.Serial != s1 || diag.Token.State != "issued" {
		t.Fatalf("diagnostics show token %+v", diag.Token)
	}

	// The holder locks the PIN with wrong tries. SoftHSM2 counts none
	// (CKR_PIN_INCORRECT forever, it never answers CKR_PIN_LOCKED); a
	// hardware token locks after its retry count. The flow is the same.
	locked := false
	for i := 0; i < 10 && !locked; i++ {
		err := dev.Login("000000")
		switch {
		case errors.Is(err, token.ErrPINLocked):
			locked = true
		case !errors.Is(err, token.ErrPINIncorrect):
			t.Fatalf("wrong PIN %d: %v", i, err)
		}
	}
	if !locked {
		t.Log("SoftHSM2 did not lock the user PIN after 10 wrong tries (it keeps no retry counter); the unlock resets the PIN all the same")
	}

	// Bad input before any request: refused, audited, nothing changed.
	before, refusals := w.requestCount(), w.refusalsLogged()
	w.refused(hadm, 400, "not in the inventory", "POST", "/api/v1/ra/token-unlock", map[string]string{"token_serial": "NO-SUCH-TOKEN"})
	w.refused(cadm, 403, "not held by organisation clinic", "POST", "/api/v1/ra/token-unlock", map[string]string{"token_serial": s1})
	w.refused(officer, 409, "not in a holder's hands", "POST", "/api/v1/ra/token-unlock", map[string]string{"token_serial": s2})
	w.refused(hadm, 409, "has no unlock request", "POST", "/api/v1/ra/token-unlock/"+s1+"/authorisation", nil)
	if got := w.requestCount(); got != before {
		t.Fatalf("refused requests left %d requests, want %d", got, before)
	}
	if got := w.refusalsLogged(); got != refusals+4 {
		t.Fatalf("%d refusals audited, want %d", got-refusals, 4)
	}

	// The unlock request: due in 2 working days from the CA's receipt.
	var rq requestView
	w.must(hadm, 201, "POST", "/api/v1/ra/token-unlock", map[string]string{"token_serial": s1, "comment": "PIN forgotten"}, &rq)
	if rq.Kind != ra.KindTokenUnlock || rq.State != ra.StateCAReview {
		t.Fatalf("unlock request %+v", rq)
	}
	cal, err := ra.CalendarFrom(w.cfg.RA)
	if err != nil {
		t.Fatal(err)
	}
	if want := cal.Deadline(rq.CAAt, 2); !rq.DueAt.Equal(want) {
		t.Fatalf("due %s, want 2 working days after %s: %s", rq.DueAt, rq.CAAt, want)
	}
	w.must(hadm, 200, "GET", "/api/v1/tokens/"+s1, nil, &tv)
	if tv.State != "locked" {
		t.Fatalf("token is %s while its unlock is pending, want locked", tv.State)
	}
	w.refused(hadm, 409, "already has an unlock request pending", "POST", "/api/v1/ra/token-unlock", map[string]string{"token_serial": s1})
	w.refused(hadm, 409, "only after its approval", "POST", "/api/v1/ra/token-unlock/"+s1+"/authorisation", nil)
	w.refused(hadm, 403, "RA officer", "POST", "/api/v1/requests/"+rq.ID+"/approve", nil)
	w.refused(engineer, 403, "RA officer", "POST", "/api/v1/requests/"+rq.ID+"/approve", nil)
	w.must(officer, 200, "POST", "/api/v1/requests/"+rq.ID+"/approve", map[string]string{"comment": "holder identified"}, &rq)
	if rq.State != ra.StateAuthorised {
		t.Fatalf("approved unlock is %s, want authorised", rq.State)
	}
	w.refused(officer, 403, "only the requester", "POST", "/api/v1/ra/token-unlock/"+s1+"/authorisation", nil)
	w.refused(cadm, 403, "not held by organisation clinic", "POST", "/api/v1/ra/token-unlock/"+s1+"/authorisation", nil)

	// The client command's steps: fetch the authorisation once, log in as
	// SO with it, set the new user PIN.
	var auth authorisation
	w.must(hadm, 200, "POST", "/api/v1/ra/token-unlock/"+s1+"/authorisation", nil, &auth)
	if auth.Form != "so_pin" || auth.SOPIN != soPIN || !strings.Contains(auth.Warning, "count failed unblock attempts") {
		t.Fatalf("authorisation %+v; want the SO PIN set at personalisation and the warning", auth)
	}
	refusals = w.refusalsLogged()
	w.refused(hadm, 409, "already used", "POST", "/api/v1/ra/token-unlock/"+s1+"/authorisation", nil)
	if w.refusalsLogged() != refusals+1 {
		t.Fatal("the second use of the authorisation was not audited")
	}
	if err := dev.InitUserPIN(auth.SOPIN, "246810"); err != nil {
		t.Fatal(err)
	}
	if err := dev.Login(transportPIN); !errors.Is(err, token.ErrPINIncorrect) {
		t.Fatalf("the old PIN after the unlock: %v, want incorrect", err)
	}
	var cert struct{ PEM string }
	w.must(w.admin, 200, "GET", "/api/v1/certs/"+certSerial, nil, &cert)
	signOnToken(t, mod, "usbkey-1", "246810", "holder-sign", cert.PEM)
	w.must(hadm, 200, "GET", "/api/v1/requests/"+rq.ID, nil, &rq)
	w.must(hadm, 200, "GET", "/api/v1/tokens/"+s1, nil, &tv)
	if rq.State != ra.StateUnlocked || tv.State != "issued" {
		t.Fatalf("after the unlock: request %s, token %s; want unlocked, issued", rq.State, tv.State)
	}
	if strings.Contains(w.logs.String(), soPIN) {
		t.Fatal("the derived SO PIN is in the server's log")
	}

	// Replacement of the lost token by usbkey-2, the new key made on it.
	newCSR := keyOnToken(t, mod, "usbkey-2", transportPIN, "holder-sign-2")
	before, refusals = w.requestCount(), w.refusalsLogged()
	for _, tc := range []struct {
		status int
		msg    string
		body   map[string]string
	}{
		{400, "cause", map[string]string{"token_serial": s1, "new_token_serial": s2, "cause": "stolen", "csr": newCSR}},
		{400, "csr", map[string]string{"token_serial": s1, "new_token_serial": s2, "cause": "lost", "csr": "junk"}},
		{400, "not in the inventory", map[string]string{"token_serial": s1, "new_token_serial": "NOPE", "cause": "lost", "csr": newCSR}},
		{409, "not in stock", map[string]string{"token_serial": s1, "new_token_serial": s1, "cause": "lost", "csr": newCSR}},
	} {
		w.refused(hadm, tc.status, tc.msg, "POST", "/api/v1/ra/token-replace", tc.body)
	}
	w.refused(cadm, 403, "not held by organisation clinic", "POST", "/api/v1/ra/token-replace", map[string]string{"token_serial": s1, "new_token_serial": s2, "cause": "lost", "csr": newCSR})
	if w.requestCount() != before || w.refusalsLogged() != refusals+5 {
		t.Fatalf("refused replacements: %d requests (want %d), %d refusals audited (want 5)", w.requestCount(), before, w.refusalsLogged()-refusals)
	}
	w.must(hadm, 201, "POST", "/api/v1/ra/token-replace", map[string]string{"token_serial": s1, "new_token_serial": s2, "cause": "lost", "csr": newCSR}, &rq)
	if rq.State != ra.StateSupport {
		t.Fatalf("replacement request %+v, want support_review", rq)
	}
	w.refused(officer, 403, "support engineer", "POST", "/api/v1/requests/"+rq.ID+"/approve", nil)
	w.must(engineer, 200, "POST", "/api/v1/requests/"+rq.ID+"/approve", map[string]string{"comment": "holder reported the loss in person"}, &rq)
	if rq.State != ra.StateReplaced || rq.Serial == "" {
		t.Fatalf("confirmed replacement %+v", rq)
	}
	if !strings.Contains(rq.Token.RecoveryNote, "no encryption certificate") {
		t.Fatalf("recovery note %q", rq.Token.RecoveryNote)
	}
	var old struct{ Status, Reason string }
	w.must(w.admin, 200, "GET", "/api/v1/certs/"+certSerial, nil, &old)
	if old.Status != "revoked" || old.Reason != "keyCompromise" {
		t.Fatalf("the lost token's certificate is %s (%s), want revoked keyCompromise", old.Status, old.Reason)
	}
	var issued struct{ PEM, Status, Subject string }
	w.must(w.admin, 200, "GET", "/api/v1/certs/"+rq.Serial, nil, &issued)
	block, _ := pem.Decode([]byte(issued.PEM))
	nc, err := x509.ParseCertificate(block.Bytes)
	if err != nil || issued.Status != "valid" || nc.Subject.CommonName != "Zhang San" {
		t.Fatalf("new certificate %+v: %v", issued, err)
	}
	ncsr, _ := pem.Decode([]byte(newCSR))
	parsed, _ := x509.ParseCertificateRequest(ncsr.Bytes)
	if !nc.PublicKey.(*ecdsa.PublicKey).Equal(parsed.PublicKey) {
		t.Fatal("the new certificate is not for the key made on the new token")
	}
	w.must(officer, 200, "GET", "/api/v1/tokens/"+s1, nil, &tv)
	if tv.State != "lost" || len(tv.Certificates) != 0 {
		t.Fatalf("old token %+v, want lost without certificates", tv)
	}
	w.must(officer, 200, "GET", "/api/v1/tokens/"+s2, nil, &tv)
	if tv.State != "issued" || tv.Holder != holder || tv.Org != "hosp" || len(tv.Certificates) != 1 || tv.Certificates[0] != rq.Serial {
		t.Fatalf("new token %+v", tv)
	}
	w.must(w.admin, 200, "GET", "/api/v1/diagnostics/certificates/"+rq.Serial, nil, &diag)
	if diag.Token == nil || diag.Token.Serial != s2 {
		t.Fatalf("diagnostics of the new certificate show token %+v", diag.Token)
	}
	// The new token's SO PIN, given once to the engineer setting it.
	var cred personalised
	w.must(engineer, 200, "POST", "/api/v1/tokens/"+s2+"/credential", nil, &cred)
	if err := (token.Device{Module: mod, Serial: s2}).SetSOPIN(transportSOPIN, cred.Credential.SOPIN); err != nil {
		t.Fatal(err)
	}
	w.refused(engineer, 409, "already given out", "POST", "/api/v1/tokens/"+s2+"/credential", nil)
	w.refused(engineer, 409, "is lost", "POST", "/api/v1/tokens/"+s1+"/credential", nil)
	signOnToken(t, mod, "usbkey-2", transportPIN, "holder-sign-2", issued.PEM)

	// No SO PIN is stored: not in any file of the data directory, nor in
	// the log.
	for _, pin := range []string{soPIN, cred.Credential.SOPIN} {
		if strings.Contains(w.logs.String(), pin) {
			t.Fatal("a derived SO PIN is in the server's log")
		}
		err := filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte(pin)) {
				t.Errorf("a derived SO PIN is in %s", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// skfDouble plays a GM/T 0016 SKF token: it hands out a random challenge
// and unblocks its PIN only for the challenge encrypted under its admin key
// with SM4-ECB, counting wrong answers like a real token.
type skfDouble struct {
	adminKey  []byte
	challenge []byte
	retries   int
	pin       string
	locked    bool
}

func (d *skfDouble) login(pin string) bool {
	if d.locked || pin != d.pin {
		d.retries--
		d.locked = d.retries <= 0
		return false
	}
	return true
}

func (d *skfDouble) getChallenge() []byte {
	d.challenge = make([]byte, 8)
	rand.Read(d.challenge)
	return d.challenge
}

func (d *skfDouble) unblock(response []byte, newPIN string) bool {
	c, err := sm4.NewCipher(d.adminKey)
	if err != nil {
		return false
	}
	want := make([]byte, 16)
	copy(want, d.challenge)
	c.Encrypt(want, want)
	d.challenge = nil
	if !bytes.Equal(want, response) {
		return false
	}
	d.pin, d.locked, d.retries = newPIN, false, 3
	return true
}

// TestUSBKeyChallengeResponse unlocks a challenge-response token (model
// skf, SM4-ECB) against a double that implements the same cipher.
func TestUSBKeyChallengeResponse(t *testing.T) {
	w := newWorld(t)
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "hosp", "name": "City Hospital"}, nil)
	hadm := w.enrol("/api/v1/ra/orgs/hosp/admins", "hadm", "")
	officer := w.enrol("/api/v1/ra/staff", "officer", "ra_officer")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certSerial := w.issue(officer, "hosp", "Li Si", "personal-signing", csrPEM(t, key, "li"))

	w.must(officer, 201, "POST", "/api/v1/tokens", map[string]string{"serial": "SKF-0001", "model": "skf"}, nil)
	var per personalised
	w.must(officer, 200, "POST", "/api/v1/tokens/SKF-0001/personalise", map[string]any{"org": "hosp", "certificates": []string{certSerial}}, &per)
	if per.Credential.Form != "sm4-ecb" || per.Credential.SOPIN != "" || len(per.Credential.AdminKey) != 32 {
		t.Fatalf("credential %+v; want a 16-byte SM4 admin key", per.Credential)
	}
	adminKey, _ := hex.DecodeString(per.Credential.AdminKey)
	d := &skfDouble{adminKey: adminKey, pin: "123456", retries: 3}
	for d.login("000000") {
	}
	for !d.locked {
		d.login("000000")
	}

	var rq requestView
	w.must(hadm, 201, "POST", "/api/v1/ra/token-unlock", map[string]string{"token_serial": "SKF-0001"}, &rq)
	w.must(officer, 200, "POST", "/api/v1/requests/"+rq.ID+"/approve", nil, &rq)
	path := "/api/v1/ra/token-unlock/SKF-0001/authorisation"
	w.refused(hadm, 400, "send the challenge", "POST", path, nil)
	w.refused(hadm, 400, "challenge", "POST", path, map[string]string{"challenge": "not hex"})
	challenge := d.getChallenge()
	var auth authorisation
	w.must(hadm, 200, "POST", path, map[string]string{"challenge": hex.EncodeToString(challenge)}, &auth)
	resp, _ := hex.DecodeString(auth.Response)
	if auth.Form != "sm4-ecb" || auth.SOPIN != "" || !strings.Contains(auth.Warning, "count failed unblock attempts") {
		t.Fatalf("authorisation %+v", auth)
	}
	if !d.unblock(resp, "654321") || !d.login("654321") {
		t.Fatal("the double refused the service's answer")
	}
	w.refused(hadm, 409, "already used", "POST", path, map[string]string{"challenge": hex.EncodeToString(d.getChallenge())})

	// A token reported lost after its unlock was approved gets no answer.
	w.must(hadm, 201, "POST", "/api/v1/ra/token-unlock", map[string]string{"token_serial": "SKF-0001"}, &rq)
	w.must(officer, 200, "POST", "/api/v1/requests/"+rq.ID+"/approve", nil, &rq)
	w.refused(officer, 400, "note", "POST", "/api/v1/tokens/SKF-0001/state", map[string]string{"state": "lost"})
	w.refused(officer, 400, "lost, damaged or retired", "POST", "/api/v1/tokens/SKF-0001/state", map[string]string{"state": "issued", "note": "found"})
	w.must(officer, 200, "POST", "/api/v1/tokens/SKF-0001/state", map[string]string{"state": "lost", "note": "holder lost it on the train"}, nil)
	w.refused(hadm, 409, "it is not unlocked any more", "POST", path, map[string]string{"challenge": hex.EncodeToString(d.getChallenge())})
}
