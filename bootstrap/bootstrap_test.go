package bootstrap

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// newTest is a Bootstrap over an empty data directory (a real store and
// file signer, no CA yet) on the Env's clock.
func newTest(t *testing.T) (*Bootstrap, *testenv.Env) {
	t.Helper()
	env := testenv.New(t, testenv.Options{NoCA: true})
	cfg := config.Default()
	cfg.DataDir = env.Dir
	cfg.API.Hosts = []string{"localhost"}
	return New(Options{Config: cfg, Store: env.Store, CA: env.CA, Now: env.Clock.Now}), env
}

func fileSerial(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Bytes()
}

func staffOf(t *testing.T, env *testenv.Env) []*store.Staff {
	t.Helper()
	var all []*store.Staff
	if err := env.Store.View(env.Ctx, func(tx *store.Tx) error {
		return tx.EachStaff(func(s *store.Staff) error { all = append(all, s); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return all
}

// Create and Finish lay out a data directory as init always has: the CA
// with its responder, tls/server.{crt,key}, bootstrap/{admin.crt,admin.key,
// ca.crt}, signer.yaml, and one bootstrap administrator. A second Create is
// refused and changes nothing; a second Finish keeps what is there.
func TestCreateAndFinish(t *testing.T) {
	b, env := newTest(t)
	if err := b.Create(env.Ctx); err != nil {
		t.Fatal(err)
	}
	sc, err := b.Finish(env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{
		filepath.Join(TLSDir, "server.crt"): 0o644, filepath.Join(TLSDir, "server.key"): 0o600,
		AdminCert: 0o644, AdminKey: 0o600, CACert: 0o644, SignerRecordFile: 0o600,
	} {
		st, err := os.Stat(filepath.Join(env.Dir, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode)
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(env.Dir, AdminCert), filepath.Join(env.Dir, AdminKey)); err != nil {
		t.Errorf("admin credential: %v", err)
	}
	iss, err := env.CA.Default()
	if err != nil || iss.OCSPCert == nil {
		t.Fatalf("CA %v, responder %v", err, iss)
	}
	staff := staffOf(t, env)
	if len(staff) != 1 || staff[0].ID != adminID || staff[0].Role != httpapi.RoleAdmin || len(staff[0].CertSerials) != 1 ||
		!bytes.Equal(staff[0].CertSerials[0], fileSerial(t, filepath.Join(env.Dir, AdminCert))) {
		t.Errorf("staff = %+v", staff)
	}
	if !bytes.Equal(sc.Serial(), fileSerial(t, filepath.Join(env.Dir, TLSDir, "server.crt"))) {
		t.Error("the served certificate is not the one on disk")
	}

	before := env.Counts()
	if err := b.Create(env.Ctx); err == nil || !strings.Contains(err.Error(), "already holds a CA") {
		t.Errorf("second Create: %v", err)
	}
	again, err := b.Finish(env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Serial(), sc.Serial()) || env.Counts() != before || len(staffOf(t, env)) != 1 {
		t.Errorf("second Finish reissued: serial %x (was %x), counts %+v (were %+v)", again.Serial(), sc.Serial(), env.Counts(), before)
	}
}

// The server TLS certificate is reissued when it is 30 days from expiry (at
// a start, and in a running server by Renew), and, once ReplaceOnRevoke is subscribed, as soon as it is revoked: the
// listeners' GetCertificate and the files on disk both move to the new one.
func TestServerCertRenewalAndReplacement(t *testing.T) {
	b, env := newTest(t)
	if err := b.LoadOrCreate(env.Ctx); err != nil {
		t.Fatal(err)
	}
	sc, err := b.Finish(env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := sc.Serial()
	cur, _ := sc.GetCertificate(nil)

	env.Clock.Set(cur.Leaf.NotAfter.Add(-31 * 24 * time.Hour))
	if sc, err = b.Finish(env.Ctx); err != nil || !bytes.Equal(sc.Serial(), first) {
		t.Fatalf("31 days before expiry: %v, serial %x, want the same %x", err, sc.Serial(), first)
	}
	if renewed, err := sc.Renew(env.Ctx); err != nil || renewed {
		t.Fatalf("Renew 31 days before expiry = %v, %v", renewed, err)
	}
	env.Clock.Set(cur.Leaf.NotAfter.Add(-29 * 24 * time.Hour))
	// A running server renews in place (Run calls Renew); a start does it
	// in Finish.
	if ok, err := sc.Renew(env.Ctx); err != nil || !ok || bytes.Equal(sc.Serial(), first) {
		t.Fatalf("Renew 29 days before expiry = %v, %v: serial %x, want a new one", ok, err, sc.Serial())
	}
	if got, _ := sc.GetCertificate(nil); !bytes.Equal(got.Leaf.SerialNumber.Bytes(), sc.Serial()) {
		t.Error("the listeners do not get the renewed certificate")
	}
	renewed := sc.Serial()
	if again, err := b.Finish(env.Ctx); err != nil || !bytes.Equal(again.Serial(), renewed) {
		t.Fatalf("a start after the renewal: %v, serial %x, want %x", err, again.Serial(), renewed)
	}

	sc.ReplaceOnRevoke()
	env.Revoke(renewed, ca.ReasonKeyCompromise)
	got, _ := sc.GetCertificate(nil)
	if bytes.Equal(sc.Serial(), renewed) || !bytes.Equal(got.Leaf.SerialNumber.Bytes(), sc.Serial()) {
		t.Fatalf("after revocation the listeners get %x, want a new certificate", got.Leaf.SerialNumber.Bytes())
	}
	if !bytes.Equal(fileSerial(t, filepath.Join(env.Dir, TLSDir, "server.crt")), sc.Serial()) {
		t.Error("server.crt on disk is not the replacement")
	}
	if c := env.Cert(sc.Serial()); c.Status == store.StatusRevoked || c.Profile != ca.ProfileServerTLS {
		t.Errorf("replacement: status %v, profile %s", c.Status, c.Profile)
	}
}

// A revoked certificate whose replacement failed at the revocation (here:
// nobody was subscribed) is replaced by the next check of the running
// server, not served until a restart.
func TestRevokedServerCertReplacedByTheNextCheck(t *testing.T) {
	b, env := newTest(t)
	if err := b.LoadOrCreate(env.Ctx); err != nil {
		t.Fatal(err)
	}
	sc, err := b.Finish(env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := sc.Serial()
	if sc.check(env.Ctx, false) {
		t.Fatal("a valid certificate was renewed by the revocation check")
	}
	env.Revoke(first, ca.ReasonKeyCompromise)
	if !bytes.Equal(sc.Serial(), first) {
		t.Fatal("replaced without a subscriber: the test does not simulate a failed replacement")
	}
	if !sc.check(env.Ctx, false) || bytes.Equal(sc.Serial(), first) {
		t.Fatalf("after the check the listeners still get the revoked %x", first)
	}
	if got, _ := sc.GetCertificate(nil); env.Cert(got.Leaf.SerialNumber.Bytes()).Status == store.StatusRevoked {
		t.Error("the certificate in use is revoked")
	}
}

// Recover adds a new credential to the bootstrap administrator and records
// it in the audit log; a bootstrap-admin staff member without the admin role
// is refused before anything is issued or written.
func TestRecover(t *testing.T) {
	b, env := newTest(t)
	if err := b.Create(env.Ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(env.Ctx); err != nil {
		t.Fatal(err)
	}
	oldCrt, _ := os.ReadFile(filepath.Join(env.Dir, AdminCert))
	oldKey, _ := os.ReadFile(filepath.Join(env.Dir, AdminKey))
	res, err := b.Recover(env.Ctx, "tester")
	if err != nil {
		t.Fatal(err)
	}
	// The credential that was there is kept beside the new one, not
	// overwritten: it is still active and somebody may hold it.
	keptCrt, _ := os.ReadFile(res.Kept)
	keptKey, _ := os.ReadFile(strings.TrimSuffix(res.Kept, ".crt") + ".key")
	if res.Kept == "" || !bytes.Equal(keptCrt, oldCrt) || !bytes.Equal(keptKey, oldKey) || len(oldKey) == 0 {
		t.Errorf("the previous admin credential was not kept (kept as %q)", res.Kept)
	}
	staff := staffOf(t, env)
	if res.ActiveBefore != 1 || len(staff) != 1 || len(staff[0].CertSerials) != 2 ||
		!bytes.Equal(staff[0].CertSerials[1], fileSerial(t, filepath.Join(env.Dir, AdminCert))) {
		t.Errorf("Recover = %+v, staff %+v", res, staff)
	}
	var entries []*store.AuditEntry
	env.Store.View(env.Ctx, func(tx *store.Tx) error {
		return tx.EachAudit(func(e *store.AuditEntry) error { entries = append(entries, e); return nil })
	})
	if len(entries) != 1 || entries[0].Action != "admin.recover" || entries[0].Actor != "offline:tester" || entries[0].Details["serial"] != res.Serial {
		t.Errorf("audit = %+v", entries)
	}

	staff[0].Role = httpapi.RoleAuditor
	if err := env.Store.Update(env.Ctx, func(tx *store.Tx) error { return tx.PutStaff(staff[0]) }); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(env.Dir, AdminCert))
	counts := env.Counts()
	if _, err := b.Recover(env.Ctx, "tester"); err == nil || !strings.Contains(err.Error(), "without the admin role") {
		t.Fatalf("Recover with an auditor bootstrap-admin: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(env.Dir, AdminCert))
	if !bytes.Equal(before, after) || env.Counts() != counts {
		t.Error("a refused Recover issued a certificate or rewrote admin.crt")
	}
}
