package ra_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/server"
	"github.com/certcenter/certcenter/store"
)

// syncBuffer is the server's captured log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

type escrowView struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	State        string    `json:"state"`
	Serial       string    `json:"serial"`
	TargetSerial string    `json:"target_serial"`
	DueAt        time.Time `json:"due_at"`
	CAReceivedAt time.Time `json:"ca_received_at"`
	Steps        []struct {
		Name      string `json:"name"`
		Need      int    `json:"need"`
		Approvals []any  `json:"approvals"`
	} `json:"steps"`
}

type keyLink struct {
	URL    string `json:"download_url"`
	Format string `json:"format"`
}

// sh runs a command in dir and fails the test on error.
func sh(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// fetchKey uses a one-time link without a client certificate, as the
// holder's tool would.
func (w *world) fetchKey(link keyLink) (int, []byte, http.Header) {
	w.t.Helper()
	i := strings.Index(link.URL, "/api/v1/key-downloads/")
	if i < 0 {
		w.t.Fatalf("link %q", link.URL)
	}
	resp, err := w.client("", "").Get(w.base + link.URL[i:])
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func TestEscrowEndToEnd(t *testing.T) {
	t.Run("file-kek", func(t *testing.T) { testEscrow(t, false) })
	t.Run("softhsm2-kek", func(t *testing.T) { testEscrow(t, true) })
}

// testEscrow issues an encryption certificate paired with an RSA signing
// certificate, encrypts a message to it with openssl, recovers the key
// through the RA (an administrator's recovery, then a judicial one refused
// with M-1 approvals and released with M), decrypts with openssl, refuses
// bad input with the reason and an audit entry, and finds the clear key
// nowhere in the data directory or the log.
func testEscrow(t *testing.T, hsm bool) {
	logs := &syncBuffer{}
	var cfg *config.Config
	tweak := func(c *config.Config) {
		c.RA.Escrow.JudicialApprovals, c.RA.Escrow.RecoveryOfficers = 2, 3
		if hsm {
			c.Signer.Provider = "pkcs11"
			c.Signer.PKCS11.Module, c.Signer.PKCS11.TokenLabel, c.Signer.PKCS11.PINEnv = softhsmToken(t), "cc-escrow", "CC_ESCROW_PIN"
		}
		cfg = c
	}
	w := newWorldLog(t, tweak, logs)
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "hospital", "name": "City Hospital"}, nil)
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "clinic", "name": "Clinic"}, nil)
	hadm := w.enrol("/api/v1/ra/orgs/hospital/admins", "hadm", "", "hadm@hospital.test")
	cadm := w.enrol("/api/v1/ra/orgs/clinic/admins", "cadm", "", "")
	officer := w.enrol("/api/v1/ra/staff", "officer", "ra_officer", "")
	officer2 := w.enrol("/api/v1/ra/staff", "officer2", "ra_officer", "")
	ro1 := w.enrol("/api/v1/ra/staff", "ro1", "recovery_officer", "")
	ro2 := w.enrol("/api/v1/ra/staff", "ro2", "recovery_officer", "")
	w.enrol("/api/v1/ra/staff", "ro3", "recovery_officer", "")

	// Zhang San's signing certificate: an RSA key, as on his USBKey.
	dir := t.TempDir()
	signKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(signKey)
	os.WriteFile(filepath.Join(dir, "sign.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	var sub submitResp
	w.must(hadm.http, 201, "POST", "/api/v1/applications", w.sign(hadm, map[string]any{"org": "hospital", "items": []map[string]any{
		{"name": "Zhang San", "email": "zhang@hospital.test", "csr": csrPEM(t, signKey, "x")},
		{"name": "Li Si", "csr": csrPEM(t, newKey(t), "y")}}}), &sub)
	var signing, ecSigning reqView
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+sub.Requests[0].ID+"/approve", nil, &signing)
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+sub.Requests[1].ID+"/approve", nil, &ecSigning)
	signPEM := w.must(officer.http, 200, "GET", "/api/v1/ra/certificates/"+signing.Serial+"?format=pem", nil, nil)
	os.WriteFile(filepath.Join(dir, "sign.crt"), []byte(signPEM), 0o600)

	// Bad requests for an encryption certificate change nothing.
	before := w.countRequests()
	for _, tc := range []struct {
		name   string
		client *http.Client
		body   any
		status int
		msg    string
	}{
		{"fail/unsigned from an administrator", hadm.http, map[string]any{"org": "hospital", "signing_serial": signing.Serial}, 400, "CMS SignedData"},
		{"fail/cms to an ECDSA signing key", hadm.http, w.sign(hadm, map[string]any{"org": "hospital", "signing_serial": ecSigning.Serial, "delivery": "cms"}), 400, "needs an RSA one"},
		{"fail/another organisation's holder", cadm.http, w.sign(cadm, map[string]any{"org": "clinic", "signing_serial": signing.Serial}), 403, "not issued to organisation clinic"},
		{"fail/unknown algorithm", hadm.http, w.sign(hadm, map[string]any{"org": "hospital", "signing_serial": signing.Serial, "algorithm": "rsa-1024"}), 400, "rsa-1024"},
		{"fail/unknown serial", hadm.http, w.sign(hadm, map[string]any{"org": "hospital", "signing_serial": "0badc0de"}), 400, "no personal signing certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, raw := w.call(tc.client, "POST", "/api/v1/ra/encryption-certificates", tc.body, nil)
			if st != tc.status || !strings.Contains(raw, tc.msg) {
				t.Fatalf("= %d %s; want %d with %q", st, raw, tc.status, tc.msg)
			}
		})
	}
	if n := w.countRequests(); n != before {
		t.Fatalf("refused requests stored: %d requests, had %d", n, before)
	}

	// The encryption certificate: signed request, RA officer's approval.
	var enc escrowView
	w.must(hadm.http, 201, "POST", "/api/v1/ra/encryption-certificates", w.sign(hadm, map[string]any{"org": "hospital", "signing_serial": signing.Serial}), &enc)
	if enc.State != "ca_review" || enc.Kind != ra.KindEncryptionCert {
		t.Fatalf("submitted %+v", enc)
	}
	w.must(hadm.http, 409, "POST", "/api/v1/ra/encryption-certificates", w.sign(hadm, map[string]any{"org": "hospital", "signing_serial": signing.Serial}), nil)
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+enc.ID+"/approve", nil, &enc)
	if enc.State != "issued" || enc.Serial == "" {
		t.Fatalf("approved %+v", enc)
	}
	encPEM := w.must(officer.http, 200, "GET", "/api/v1/ra/certificates/"+enc.Serial+"?format=pem", nil, nil)
	os.WriteFile(filepath.Join(dir, "enc.crt"), []byte(encPEM), 0o600)
	encCert := parsePEMCert(t, encPEM)
	signCert := parsePEMCert(t, signPEM)
	if encCert.Subject.String() != signCert.Subject.String() || encCert.KeyUsage&x509.KeyUsageDigitalSignature != 0 || encCert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Fatalf("encryption certificate %s, key usage %b; want subject %s, keyEncipherment, no digitalSignature", encCert.Subject, encCert.KeyUsage, signCert.Subject)
	}
	if _, ok := encCert.PublicKey.(*rsa.PublicKey); !ok {
		t.Fatalf("encryption key %T; ra.escrow.key_algorithm is rsa-2048", encCert.PublicKey)
	}

	// A sender encrypts to it.
	os.WriteFile(filepath.Join(dir, "msg.txt"), []byte("病历 record 7: confidential\n"), 0o600)
	sh(t, dir, "openssl", "cms", "-encrypt", "-aes256", "-in", "msg.txt", "-outform", "DER", "-out", "msg.p7m", "enc.crt")

	// The holder gets the key enveloped to his signing certificate, once.
	var link keyLink
	w.must(hadm.http, 201, "POST", "/api/v1/requests/"+enc.ID+"/key-link", nil, &link)
	w.must(hadm.http, 409, "POST", "/api/v1/requests/"+enc.ID+"/key-link", nil, nil)
	st, body, _ := w.fetchKey(link)
	if st != 200 {
		t.Fatalf("key download = %d %s", st, body)
	}
	if st, _, _ := w.fetchKey(link); st != 404 {
		t.Fatalf("second use of the link = %d; want 404", st)
	}
	clearKey := decryptWith(t, dir, body, "first")
	if got := sh(t, dir, "openssl", "cms", "-decrypt", "-inform", "DER", "-in", "msg.p7m", "-recip", "enc.crt", "-inkey", "first.key"); !bytes.Contains(got, []byte("record 7")) {
		t.Fatalf("decrypted %q", got)
	}

	// Recovery by the organisation's certificate administrator: the token
	// is lost, so the key comes as PKCS#12 under a one-time password.
	recovery := map[string]any{"org": "hospital", "serial": enc.Serial, "reason": "USBKey lost", "delivery": "pkcs12"}
	var rec escrowView
	w.must(hadm.http, 201, "POST", "/api/v1/ra/key-recoveries", w.sign(hadm, recovery), &rec)
	if rec.State != "ca_review" {
		t.Fatalf("recovery %+v", rec)
	}
	cal, err := ra.CalendarFrom(cfg.RA)
	if err != nil {
		t.Fatal(err)
	}
	if want := cal.Deadline(rec.CAReceivedAt, 5); !rec.DueAt.Equal(want) {
		t.Fatalf("recovery due %s; want 5 working days from %s: %s", rec.DueAt, rec.CAReceivedAt, want)
	}
	w.must(hadm.http, 409, "POST", "/api/v1/requests/"+rec.ID+"/key-link", nil, nil)
	w.must(cadm.http, 403, "POST", "/api/v1/requests/"+rec.ID+"/approve", nil, nil)
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+rec.ID+"/approve", nil, &rec)
	if rec.State != "recovered" {
		t.Fatalf("approved recovery %+v", rec)
	}
	w.must(cadm.http, 403, "POST", "/api/v1/requests/"+rec.ID+"/key-link", nil, nil)
	w.must(hadm.http, 201, "POST", "/api/v1/requests/"+rec.ID+"/key-link", nil, &link)
	st, body, hdr := w.fetchKey(link)
	pass := hdr.Get(ra.PasswordHeader)
	if st != 200 || pass == "" || hdr.Get("Content-Type") != "application/x-pkcs12" {
		t.Fatalf("PKCS#12 download = %d %v", st, hdr)
	}
	os.WriteFile(filepath.Join(dir, "rec.p12"), body, 0o600)
	sh(t, dir, "openssl", "pkcs12", "-in", "rec.p12", "-passin", "pass:"+pass, "-nodes", "-out", "rec.pem")
	if got := sh(t, dir, "openssl", "cms", "-decrypt", "-inform", "DER", "-in", "msg.p7m", "-recip", "rec.pem", "-inkey", "rec.pem"); !bytes.Contains(got, []byte("record 7")) {
		t.Fatalf("decrypted with the recovered PKCS#12 %q", got)
	}

	// A judicial recovery: staff submit it with the case reference; only
	// recovery officers approve, each once, and M-1 approvals release
	// nothing.
	judicial := map[string]any{"org": "hospital", "serial": enc.Serial, "reason": "court order", "judicial": true, "delivery": "cms"}
	w.must(officer.http, 400, "POST", "/api/v1/ra/key-recoveries", judicial, nil)
	judicial["case_reference"] = "(2026)京0105刑初123号"
	var jr escrowView
	w.must(officer.http, 201, "POST", "/api/v1/ra/key-recoveries", judicial, &jr)
	if jr.State != "recovery_review" || len(jr.Steps) != 1 || jr.Steps[0].Need != 2 {
		t.Fatalf("judicial recovery %+v; want recovery_review needing 2", jr)
	}
	if st, raw := w.call(officer2.http, "POST", "/api/v1/requests/"+jr.ID+"/approve", nil, nil); st != 403 || !strings.Contains(raw, "recovery officers") {
		t.Fatalf("RA officer approving a judicial recovery = %d %s", st, raw)
	}
	if st, _ := w.call(w.admin, "POST", "/api/v1/requests/"+jr.ID+"/approve", nil, nil); st != 403 {
		t.Fatalf("an administrator standing in for a recovery officer = %d; want 403", st)
	}
	w.must(ro1.http, 200, "POST", "/api/v1/requests/"+jr.ID+"/approve", map[string]string{"comment": "order verified"}, &jr)
	w.must(ro1.http, 409, "POST", "/api/v1/requests/"+jr.ID+"/approve", nil, nil)
	if st, raw := w.call(officer.http, "POST", "/api/v1/requests/"+jr.ID+"/key-link", nil, nil); st != 409 || !strings.Contains(raw, "1 of 2 approvals") {
		t.Fatalf("key link with M-1 approvals = %d %s; want 409 naming 1 of 2", st, raw)
	}
	if jr.State != "recovery_review" {
		t.Fatalf("after M-1 approvals: %s", jr.State)
	}
	w.must(ro2.http, 200, "POST", "/api/v1/requests/"+jr.ID+"/approve", nil, &jr)
	if jr.State != "recovered" {
		t.Fatalf("after M approvals: %+v", jr)
	}
	w.must(officer.http, 201, "POST", "/api/v1/requests/"+jr.ID+"/key-link", nil, &link)
	st, body, _ = w.fetchKey(link)
	if st != 200 {
		t.Fatalf("judicial download = %d %s", st, body)
	}
	if k := decryptWith(t, dir, body, "judicial"); !bytes.Equal(k, clearKey) {
		t.Fatal("the judicial recovery returned another key")
	}

	// Bad recoveries: no escrowed key (a signing certificate), and a
	// record that no longer unwraps.
	before = w.countRequests()
	if st, raw := w.call(hadm.http, "POST", "/api/v1/ra/key-recoveries", w.sign(hadm, map[string]any{"org": "hospital", "serial": signing.Serial, "reason": "x", "delivery": "pkcs12"}), nil); st != 404 || !strings.Contains(raw, "no escrowed key") {
		t.Fatalf("recovery of a signing certificate = %d %s", st, raw)
	}
	if n := w.countRequests(); n != before {
		t.Fatalf("a refused recovery was stored: %d requests, had %d", n, before)
	}
	// A recovery approved and linked before the record is damaged.
	var late escrowView
	w.must(hadm.http, 201, "POST", "/api/v1/ra/key-recoveries", w.sign(hadm, map[string]any{"org": "hospital", "serial": enc.Serial, "reason": "second device"}), &late)
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+late.ID+"/approve", nil, &late)
	var lateLink keyLink
	w.must(hadm.http, 201, "POST", "/api/v1/requests/"+late.ID+"/key-link", nil, &lateLink)
	before = w.countRequests()

	serial, _ := hex.DecodeString(enc.Serial)
	w.restart(t, cfg, logs, func(tx *store.Tx) error {
		k, err := tx.EscrowedKey(serial)
		if err != nil {
			return err
		}
		k.Wrapped[len(k.Wrapped)/2] ^= 0x01
		return tx.PutEscrowedKey(k)
	})
	if st, raw := w.call(hadm.http, "POST", "/api/v1/ra/key-recoveries", w.sign(hadm, recovery), nil); st != 422 || !strings.Contains(raw, "damaged") {
		t.Fatalf("recovery of a tampered record = %d %s; want 422 damaged", st, raw)
	}
	if n := w.countRequests(); n != before {
		t.Fatalf("refused recoveries stored: %d requests, had %d", n, before)
	}
	// The link made before is refused too, and stays unused: nothing
	// was delivered.
	for range 2 {
		if st, body, _ := w.fetchKey(lateLink); st != 422 || !bytes.Contains(body, []byte("damaged")) {
			t.Fatalf("download of a damaged key = %d %s; want 422", st, body)
		}
	}
	w.must(hadm.http, 200, "GET", "/api/v1/requests/"+late.ID, nil, &late)
	if late.State != "recovered" {
		t.Fatalf("after refused downloads the request is %s; want recovered", late.State)
	}

	// Every refusal is in the audit log with its reason.
	var refusals []string
	w.restart(t, cfg, logs, func(tx *store.Tx) error {
		return tx.EachAudit(func(e *store.AuditEntry) error {
			if e.Action == "escrow.refuse" {
				refusals = append(refusals, e.Details["operation"]+": "+e.Details["reason"])
			}
			return nil
		})
	})
	all := strings.Join(refusals, "\n")
	for _, want := range []string{"link: request", "1 of 2 approvals", "no escrowed key", "download: certificate", "damaged", "is ca_review"} {
		if !strings.Contains(all, want) {
			t.Errorf("no audited refusal with %q in:\n%s", want, all)
		}
	}

	// The KEK is where the signer keeps keys: a file beside the file
	// signer's, or inside the token and nowhere on disk.
	_, kekErr := os.Stat(filepath.Join(w.dir, "keys", "certcenter-escrow-kek.kek"))
	mech := "kek=file:aes-256-gcm:certcenter-escrow-kek"
	if hsm {
		mech = "kek=pkcs11:aes-key-wrap:certcenter-escrow-kek"
		if kekErr == nil {
			t.Error("a KEK file exists with the PKCS#11 signer")
		}
	} else if kekErr != nil {
		t.Errorf("no KEK file with the file signer: %v", kekErr)
	}
	if !bytes.Contains(logs.Bytes(), []byte(mech)) {
		t.Errorf("the log does not show keys escrowed under %s", mech)
	}

	// The clear key is nowhere under the data directory nor in the log.
	stopWorld(t, w)
	scanForKey(t, w.dir, logs.Bytes(), clearKey)
}

func parsePEMCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("no PEM in %q", s)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// decryptWith opens a CMS key delivery with the holder's signing key and
// returns the PKCS#8 DER; it also writes <name>.key (PEM).
func decryptWith(t *testing.T, dir string, delivery []byte, name string) []byte {
	t.Helper()
	os.WriteFile(filepath.Join(dir, name+".p7m"), delivery, 0o600)
	sh(t, dir, "openssl", "cms", "-decrypt", "-inform", "DER", "-in", name+".p7m", "-recip", "sign.crt", "-inkey", "sign.key", "-out", name+".der")
	sh(t, dir, "openssl", "pkey", "-inform", "DER", "-in", name+".der", "-out", name+".key")
	der, err := os.ReadFile(filepath.Join(dir, name+".der"))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// restart stops the server, runs fn on its store (if not nil), and starts
// it again with the same configuration.
func (w *world) restart(t *testing.T, cfg *config.Config, logs io.Writer, fn func(tx *store.Tx) error) {
	t.Helper()
	stopWorld(t, w)
	if fn != nil {
		st, err := store.Open(store.Options{Dir: filepath.Join(w.dir, "db")})
		if err != nil {
			t.Fatal(err)
		}
		err = st.Update(context.Background(), fn)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	w.srv = srv
	w.base = "https://" + srv.Addr("api")
}

func stopWorld(t *testing.T, w *world) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// scanForKey fails if the key's DER, its PEM base64 (as one string and as
// the PEM's first line), or an RSA key's private exponent occurs in any
// file under dir or in the log.
func scanForKey(t *testing.T, dir string, log, der []byte) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString(der)
	needles := map[string][]byte{"DER": der, "base64": []byte(b64), "PEM line": []byte(b64[64:128])}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			needles["RSA private exponent"] = rk.D.Bytes()
			needles["RSA prime"] = rk.Primes[0].Bytes()
		}
	}
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for what, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("the clear encryption key's %s is in %s", what, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for what, n := range needles {
		if bytes.Contains(log, n) {
			t.Errorf("the clear encryption key's %s is in the log", what)
		}
	}
	if files < 5 || len(log) < 1000 {
		t.Fatalf("scanned %d files and %d bytes of log: too little to mean anything", files, len(log))
	}
	t.Logf("scanned %d files and %d bytes of log for the clear key", files, len(log))
}

// softhsmToken makes a SoftHSM2 token cc-escrow in its own directory and
// returns the module path; its user PIN is in CC_ESCROW_PIN.
func softhsmToken(t *testing.T) string {
	t.Helper()
	if os.Getenv("CERTCENTER_SKIP_SOFTHSM") == "1" {
		t.Skip("CERTCENTER_SKIP_SOFTHSM=1")
	}
	module := "/usr/lib/softhsm/libsofthsm2.so"
	if env := os.Getenv("CERTCENTER_SOFTHSM_MODULE"); env != "" {
		module = env
	}
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("SoftHSM2 is not installed (%v): apt-get install softhsm2", err)
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "tokens"), 0o700)
	conf := filepath.Join(dir, "softhsm2.conf")
	os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	t.Setenv("CC_ESCROW_PIN", "1234")
	sh(t, dir, "softhsm2-util", "--init-token", "--free", "--label", "cc-escrow", "--pin", "1234", "--so-pin", "5678")
	return module
}
