package publish

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/crl"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// env is certcenter's side: a real store, CA and CRL builder in a temp dir,
// and a Publisher running against the given targets.
type env struct {
	t      *testing.T
	dir    string
	st     *store.Store
	ca     *ca.Authority
	crl    *crl.Builder
	pub    *Publisher
	cancel context.CancelFunc
	done   chan struct{}
}

func newEnv(t *testing.T, dir string, targets ...config.PublishTarget) *env {
	t.Helper()
	return newEnvWith(t, dir, nil, targets...)
}

// newEnvWith is newEnv with the publisher's options adjusted by opt.
func newEnvWith(t *testing.T, dir string, opt func(*Options), targets ...config.PublishTarget) *env {
	t.Helper()
	e := &env{t: t, dir: dir}
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	signers, err := signer.NewFile(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	e.ca = ca.New(ca.Options{Store: st, Signers: signers, PublicURL: "http://127.0.0.1:8080", LDAPURL: "ldap://127.0.0.1:1389"})
	ctx := context.Background()
	fresh := e.ca.Load(ctx) != nil
	if fresh {
		if _, err := e.ca.Init(ctx, ca.InitOptions{Name: "demo", CommonName: "Test Root CA", Organization: "certcenter",
			Country: "CN", Algorithm: signer.ECDSAP256, Validity: 10 * 365 * 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	e.crl, err = crl.New(crl.Options{Store: st, CA: e.ca, Interval: 24 * time.Hour, Validity: 7 * 24 * time.Hour,
		DeltaValidity: time.Hour, DeltaDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.ca.Subscribe(func(_ context.Context, ev ca.Event) {
		if ev.Kind == ca.EventRevoked {
			e.crl.Notify(ev.Cert.Issuer)
		}
	})
	if fresh {
		if err := e.crl.Full(ctx, "demo"); err != nil {
			t.Fatal(err)
		}
	}
	po := Options{Store: st, Config: config.Publish{Targets: targets, BatchSize: 50,
		LagWarning: config.Duration(time.Minute), MaxBackoff: config.Duration(300 * time.Millisecond)},
		MinBackoff: 20 * time.Millisecond}
	if opt != nil {
		opt(&po)
	}
	e.pub, err = New(po)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		go e.crl.Run(runCtx)
		_ = e.pub.Run(runCtx)
	}()
	t.Cleanup(e.close)
	return e
}

// close stops the publisher without letting it finish anything and closes
// the store: what a kill leaves is the store's committed state.
func (e *env) close() {
	if e.st == nil {
		return
	}
	e.cancel()
	<-e.done
	e.crl.Close()
	e.st.Close()
	e.st = nil
}

func target(name string, urls ...string) config.PublishTarget {
	t := config.DefaultPublishTarget()
	t.Name, t.URLs, t.BaseDN, t.BindDN = name, urls, testBase, testRootDN
	t.PasswordEnv = "CERTCENTER_TEST_PUBLISH_PW"
	t.ConnectTimeout, t.Timeout = config.Duration(2*time.Second), config.Duration(5*time.Second)
	return t
}

func (e *env) issue(cn, org string) *store.Cert {
	e.t.Helper()
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.ca.Issue(context.Background(), ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: cn, Organization: []string{org}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) state(name string) TargetState {
	for _, s := range e.pub.Targets(context.Background()) {
		if s.Name == name {
			return s
		}
	}
	e.t.Fatalf("no target %s", name)
	return TargetState{}
}

// eventually polls cond with a generous deadline; it is not a timing
// assertion, only a bound on a hung test.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("gave up waiting: %s", what)
	return 0
}

func (e *env) storedCRL(file string) []byte {
	var der []byte
	_ = e.st.View(context.Background(), func(tx *store.Tx) error {
		der, _ = tx.Blob("crl", file)
		return nil
	})
	return der
}

const caDN = "cn=Test Root CA," + testBase

func subDN(cn, org string) string { return "cn=" + cn + ",o=" + org + "," + testBase }

func has(vals [][]byte, v []byte) int {
	n := 0
	for _, x := range vals {
		if bytes.Equal(x, v) {
			n++
		}
	}
	return n
}

func TestPublishCAThenRevocation(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	e := newEnv(t, t.TempDir(), target("his", ldapd.url()))
	iss, _ := e.ca.Issuer("demo")

	eventually(t, "CA certificate and CRLs on the target", func() bool {
		return has(ldapd.values(caDN, "cACertificate;binary"), iss.Cert.Raw) == 1 &&
			has(ldapd.values(caDN, "certificateRevocationList;binary"), e.storedCRL("demo.crl")) == 1 &&
			has(ldapd.values(caDN, "deltaRevocationList;binary"), e.storedCRL("demo-delta.crl")) == 1
	})
	a, b := e.issue("alice", "Hospital A"), e.issue("bob", "Hospital B")
	eventually(t, "subscriber certificates on the target", func() bool {
		return has(ldapd.values(subDN("alice", "Hospital A"), "userCertificate;binary"), a.DER) == 1 &&
			has(ldapd.values(subDN("bob", "Hospital B"), "userCertificate;binary"), b.DER) == 1
	})
	st, err := e.pub.CertStatus(context.Background(), a.Serial)
	if err != nil || len(st) != 1 || st[0].State != "published" || st[0].DN != subDN("alice", "Hospital A") || st[0].PublishedAt.IsZero() {
		t.Errorf("CertStatus = %+v, %v", st, err)
	}

	before := e.storedCRL("demo.crl")
	start := time.Now()
	if _, err := e.ca.Revoke(context.Background(), a.Serial, ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new CRL on the target", func() bool {
		now := e.storedCRL("demo.crl")
		if bytes.Equal(now, before) {
			return false
		}
		got := ldapd.values(caDN, "certificateRevocationList;binary")
		if len(got) != 1 || !bytes.Equal(got[0], now) {
			return false
		}
		l, err := x509.ParseRevocationList(got[0])
		return err == nil && slices.ContainsFunc(l.RevokedCertificateEntries, func(r x509.RevocationListEntry) bool {
			return bytes.Equal(r.SerialNumber.Bytes(), a.Serial)
		})
	})
	t.Logf("revocation to CRL on the target: %s", time.Since(start))
	eventually(t, "the revoked certificate removed from its entry", func() bool {
		return len(ldapd.values(subDN("alice", "Hospital A"), "userCertificate;binary")) == 0
	})
	if s := e.state("his"); !s.Connected || s.LastError != "" || s.Delivered == 0 || s.LastSuccess.IsZero() {
		t.Errorf("state = %+v", s)
	}
}

// A stopped target queues changes; started again it receives them all,
// each value once.
func TestTargetDownThenBack(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	e := newEnv(t, t.TempDir(), target("his", ldapd.url()))
	eventually(t, "initial state delivered", func() bool { return e.state("his").Initialised })
	ldapd.stop()
	var certs []*store.Cert
	for i := range 12 {
		// Two certificates per entry, so a replace must keep the sibling.
		certs = append(certs, e.issue(fmt.Sprintf("user%d", i/2), "Hospital"))
	}
	if _, err := e.ca.Revoke(context.Background(), certs[0].Serial, ca.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the failure and the queue in the target state", func() bool {
		s := e.state("his")
		return s.Pending > 0 && s.LastError != "" && !s.Connected && !s.OldestPending.IsZero()
	})
	if st, _ := e.pub.CertStatus(context.Background(), certs[3].Serial); len(st) != 1 || (st[0].State != "pending" && st[0].State != "failed") {
		t.Errorf("CertStatus while down = %+v", st)
	}
	ldapd.start()
	eventually(t, "queue drained", func() bool { s := e.state("his"); return s.Pending == 0 && s.Connected })
	for i, c := range certs {
		vals := ldapd.values(subDN(fmt.Sprintf("user%d", i/2), "Hospital"), "userCertificate;binary")
		want := 1
		if i == 0 {
			want = 0 // revoked while the target was down
		}
		if n := has(vals, c.DER); n != want {
			t.Errorf("certificate %d is %d times in its entry, want %d", i, n, want)
		}
		if i/2 > 0 && len(vals) != 2 {
			t.Errorf("entry user%d has %d values, want 2", i/2, len(vals))
		}
	}
}

// Changes committed while the target was unreachable are delivered by the
// next run: the queue is the store's change log, not memory.
// (cmd/certcenter's TestPublishQueueSurvivesSIGKILL does the same with
// the real binary killed with SIGKILL, also in the middle of a delivery.)
func TestPendingQueueSurvivesRestart(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	dir := t.TempDir()
	tg := target("his", ldapd.url())
	e := newEnv(t, dir, tg)
	eventually(t, "initial state delivered", func() bool { return e.state("his").Initialised })
	ldapd.stop()
	var certs []*store.Cert
	for i := range 5 {
		certs = append(certs, e.issue(fmt.Sprintf("p%d", i), "Clinic"))
	}
	e.close() // the worker never delivered them
	ldapd.start()
	e = newEnv(t, dir, tg)
	eventually(t, "queued certificates delivered after restart", func() bool {
		for i, c := range certs {
			if has(ldapd.values(subDN(fmt.Sprintf("p%d", i), "Clinic"), "userCertificate;binary"), c.DER) != 1 {
				return false
			}
		}
		return true
	})
}

func TestWrongBindPasswordInState(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", "wrong")
	ldapd := startSlapd(t)
	e := newEnv(t, t.TempDir(), target("his", ldapd.url()))
	eventually(t, "bind failure in the target state", func() bool {
		s := e.state("his")
		return strings.Contains(s.LastError, "Invalid Credentials") && !s.Connected && s.Failures > 0
	})
	if s := e.state("his"); !strings.Contains(s.LastError, "bind as "+testRootDN) {
		t.Errorf("error does not name the bind: %q", s.LastError)
	}
	// A refused bind is the target's failure, not a record's: the
	// change waits in the log (pending), the failed set stays empty.
	c := e.issue("held", "Hospital H")
	eventually(t, "the change pending behind the refused bind", func() bool { return e.certState("his", c.Serial).State == "pending" })
	if s := e.state("his"); s.Failed != 0 || s.Pending == 0 || s.Initialised {
		t.Errorf("state behind a refused bind = %+v", s)
	}
}

// Two targets, one down: the other gets everything, and failover skips a
// dead first URL.
func TestOneTargetDownOtherUnaffected(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	dead := "ldap://" + freePort(t)
	e := newEnv(t, t.TempDir(), target("up", dead, ldapd.url()), target("down", dead))
	c := e.issue("carol", "Hospital C")
	eventually(t, "delivered to the live target", func() bool {
		return has(ldapd.values(subDN("carol", "Hospital C"), "userCertificate;binary"), c.DER) == 1
	})
	if s := e.state("up"); s.URL != ldapd.url() {
		t.Errorf("connected to %q, want the second URL %q", s.URL, ldapd.url())
	}
	s := e.state("down")
	if s.Connected || s.LastError == "" || s.Initialised {
		t.Errorf("down target state = %+v", s)
	}
	st, err := e.pub.CertStatus(context.Background(), c.Serial)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range st {
		if x.Target == "up" && x.State != "published" {
			t.Errorf("up: %+v", x)
		}
		if x.Target == "down" && x.State == "published" {
			t.Errorf("down: %+v", x)
		}
	}
	if err := e.pub.Pause(context.Background(), "nope", nil); err == nil {
		t.Error("Pause of an unknown target succeeded")
	}
}

// Pause holds changes back; Resume delivers them; Resync repairs a value
// changed by hand on the target.
func TestPauseResumeResync(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	e := newEnv(t, t.TempDir(), target("his", ldapd.url()))
	eventually(t, "initial state delivered", func() bool { return e.state("his").Initialised })
	if err := e.pub.Pause(context.Background(), "his", nil); err != nil {
		t.Fatal(err)
	}
	c := e.issue("dave", "Hospital D")
	eventually(t, "queued while paused", func() bool { s := e.state("his"); return s.Paused && s.Pending > 0 })
	if v := ldapd.values(subDN("dave", "Hospital D"), "userCertificate;binary"); len(v) != 0 {
		t.Fatal("delivered while paused")
	}
	if err := e.pub.Resume(context.Background(), "his", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivered after resume", func() bool {
		return has(ldapd.values(subDN("dave", "Hospital D"), "userCertificate;binary"), c.DER) == 1
	})
	// Someone edits the entry by hand.
	conn := ldapd.dial()
	iss, _ := e.ca.Issuer("demo")
	m := ldapNewReplace(subDN("dave", "Hospital D"), "userCertificate;binary", iss.Cert.Raw)
	if err := conn.Modify(m); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := e.pub.Resync(context.Background(), "his", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "resync repaired the entry", func() bool {
		v := ldapd.values(subDN("dave", "Hospital D"), "userCertificate;binary")
		return len(v) == 1 && bytes.Equal(v[0], c.DER)
	})
}

// A target removed from the configuration loses its cursor (so it no
// longer holds back compaction); added again, it gets the whole state.
func TestRemovedTargetDropsCursor(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	dir := t.TempDir()
	e := newEnv(t, dir, target("old", ldapd.url()))
	eventually(t, "initial state delivered", func() bool { return e.state("old").Initialised })
	e.close()
	e = newEnv(t, dir, target("new", ldapd.url()))
	eventually(t, "new target initialised", func() bool { return e.state("new").Initialised })
	var cs map[string]uint64
	if err := e.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		cs, err = tx.Cursors()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := cs["publish/old"]; ok || len(cs) != 1 {
		t.Errorf("cursors after removing a target: %v", cs)
	}
	e.close()
	e = newEnv(t, dir, target("old", ldapd.url()))
	eventually(t, "re-added target gets the whole state again", func() bool {
		s := e.state("old")
		return s.Initialised && s.Delivered > 0
	})
}

// A pause survives a restart: the operator paused the target, not the
// process.
func TestPauseIsDurable(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	dir := t.TempDir()
	tg := target("his", ldapd.url())
	e := newEnv(t, dir, tg)
	eventually(t, "initial state delivered", func() bool { return e.state("his").Initialised })
	audited := false
	if err := e.pub.Pause(context.Background(), "his", func(*store.Tx) error { audited = true; return nil }); err != nil || !audited {
		t.Fatalf("Pause: %v (also ran: %v)", err, audited)
	}
	e.close()
	e = newEnv(t, dir, tg)
	c := e.issue("gina", "Hospital G")
	eventually(t, "still paused after restart, with the change queued", func() bool { s := e.state("his"); return s.Paused && s.Pending > 0 })
	if err := e.pub.Resume(context.Background(), "his", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivered after resume", func() bool {
		return has(ldapd.values(subDN("gina", "Hospital G"), "userCertificate;binary"), c.DER) == 1
	})
}
