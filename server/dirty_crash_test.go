package server

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/store"
)

const crashChildEnv = "CERTCENTER_TEST_CRASH_CHILD_DATA"

// TestCrashChildRevokes is the process TestRestartAfterKillRepairsFromDirtyIndex
// kills: it opens the data directory as the server does, revokes three
// seeded certificates through the CA with no OCSP responder or CRL builder
// subscribed (what a server does between the revocation's commit and its
// subscribers' work), prints the serials and waits to be killed.
func TestCrashChildRevokes(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestRestartAfterKillRepairsFromDirtyIndex")
	}
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = dir
	c, err := openCore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ca.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var serials []string
	for i := range 3 {
		var certs []*store.Cert
		if err := c.store.View(ctx, func(tx *store.Tx) error {
			return tx.CertsBySubscriber(seed.Name(i), func(c *store.Cert) error { certs = append(certs, c); return nil })
		}); err != nil || len(certs) != 1 {
			t.Fatalf("certificate of %s: %d, %v", seed.Name(i), len(certs), err)
		}
		if _, err := c.ca.Revoke(ctx, certs[0].Serial, ca.ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
		serials = append(serials, certs[0].SerialHex())
	}
	fmt.Printf("committed %s\n", strings.Join(serials, ","))
	os.Stdout.Sync()
	time.Sleep(time.Minute) // killed before this ends
	t.Fatal("not killed")
}

// TestRestartAfterKillRepairsFromDirtyIndex: revocations committed by a
// process killed with SIGKILL before its OCSP responder and CRL builder
// ran are in the store's dirty index; the next start repairs from it
// before /readyz turns ready: the OCSP responses and the full CRL say
// revoked, and the marks are gone.
func TestRestartAfterKillRepairsFromDirtyIndex(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if _, err := Seed(ctx, cfg, log, seedOptions(20, 0)); err != nil {
		t.Fatal(err)
	}
	s := startTest(t, cfg) // the indexes are complete after a first start
	waitReady(t, "http://"+s.Addr("http"))
	s.Stop(ctx)

	child := exec.Command(os.Args[0], "-test.run=^TestCrashChildRevokes$", "-test.count=1")
	child.Env = append(os.Environ(), crashChildEnv+"="+cfg.DataDir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var serials []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			serials = strings.Split(rest, ",")
			break
		}
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	go io.Copy(io.Discard, out)
	child.Wait()
	if len(serials) != 3 {
		t.Fatalf("the child reported %v before it was killed", serials)
	}

	// The marks written with the revocations survived the kill.
	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir)})
	if err != nil {
		t.Fatal(err)
	}
	ocspMarks, crlMarks := dirtyMarks(t, st)
	st.Close()
	for _, s := range serials {
		if !ocspMarks[s] {
			t.Errorf("serial %s is not in the OCSP dirty set after the kill (%v)", s, ocspMarks)
		}
	}
	if !crlMarks {
		t.Error("the CA's CRLs are not marked dirty after the kill")
	}

	s = startTest(t, cfg)
	public := "http://" + s.Addr("http")
	waitReady(t, public)
	issuer := readCert(t, filepath.Join(cfg.DataDir, bootstrap.CACert))
	for _, serial := range serials {
		if got := ocspStatusAt(t, cfg.DataDir, public, serial, issuer); got != xocsp.Revoked {
			t.Errorf("OCSP status of %s after the restart = %d; want revoked", serial, got)
		}
	}
	code, body := get(t, http.DefaultClient, public+"/crl/"+cfg.CA.Name+".crl")
	if code != 200 {
		t.Fatalf("full CRL = %d", code)
	}
	crl, err := x509.ParseRevocationList([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		listed[hex.EncodeToString(e.SerialNumber.Bytes())] = true
	}
	for _, serial := range serials {
		if !listed[strings.TrimLeft(serial, "0")] && !listed[serial] {
			t.Errorf("the full CRL after the restart does not list %s", serial)
		}
	}
	s.Stop(ctx)
	st, err = store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ocspMarks, crlMarks = dirtyMarks(t, st); len(ocspMarks) != 0 || crlMarks {
		t.Errorf("dirty marks left after the repair: OCSP %v, CRL %v", ocspMarks, crlMarks)
	}
}

func dirtyMarks(t *testing.T, st *store.Store) (ocsp map[string]bool, crl bool) {
	t.Helper()
	ocsp = map[string]bool{}
	if err := st.View(context.Background(), func(tx *store.Tx) error {
		if err := tx.EachDirty(store.DirtyOCSP, "", func(id string, _ []byte) error { ocsp[id] = true; return nil }); err != nil {
			return err
		}
		return tx.EachDirty(store.DirtyCRL, "", func(string, []byte) error { crl = true; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return ocsp, crl
}

// ocspStatus asks the public listener for a serial's status.
func ocspStatusAt(t *testing.T, dataDir, public, serialHex string, issuer *x509.Certificate) int {
	t.Helper()
	n, ok := new(big.Int).SetString(serialHex, 16)
	if !ok {
		t.Fatalf("serial %q", serialHex)
	}
	der, err := xocsp.CreateRequest(&x509.Certificate{SerialNumber: n}, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(public + "/ocsp/" + base64.StdEncoding.EncodeToString(der))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := xocsp.ParseResponse(body, issuer)
	if err != nil {
		t.Fatalf("OCSP response for %s: %v", serialHex, err)
	}
	return r.Status
}
