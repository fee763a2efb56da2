// Command publishbench measures publishing to a private OpenLDAP slapd:
// the throughput of delivering N subscriber certificates (entries/s) as a
// new target's initial state and as changes followed from the change log,
// and the lag from a burst of revocations to the CRL on the target.
//
// Everything runs in this process (store, CA, CRL builder, publisher) over
// a Badger store and a back-mdb slapd under -dir.
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/crl"
	"github.com/certcenter/certcenter/internal/benchproc"
	"github.com/certcenter/certcenter/internal/slapd"
	"github.com/certcenter/certcenter/publish"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

const (
	suffix = "o=bench"
	base   = "ou=pki,o=bench"
	rootDN = "cn=admin,o=bench"
	rootPW = "secret"
)

func main() {
	dir := flag.String("dir", "/tmp/publishbench", "work directory (store, keys, slapd)")
	n := flag.Int("count", 20000, "certificates in the initial state, and again as followed changes")
	revokes := flag.Int("revocations", 1000, "revocations in the burst")
	nosync := flag.Bool("dbnosync", false, "run slapd's back-mdb with dbnosync (no fsync per write: measures certcenter's side rather than the disk)")
	flag.Parse()
	if err := run(*dir, *n, *revokes, *nosync); err != nil {
		fmt.Fprintln(os.Stderr, "publishbench:", err)
		os.Exit(1)
	}
}

func logf(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }

func run(dir string, n, revokes int, nosync bool) error {
	os.RemoveAll(dir)
	ctx := context.Background()
	addr, err := slapd.FreeAddr()
	if err != nil {
		return err
	}
	sl, err := startSlapd(filepath.Join(dir, "slapd"), addr, nosync)
	if err != nil {
		return err
	}
	defer sl.Stop()

	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), SyncWrites: true})
	if err != nil {
		return err
	}
	defer st.Close()
	signers, err := signer.NewFile(filepath.Join(dir, "keys"))
	if err != nil {
		return err
	}
	auth := ca.New(ca.Options{Store: st, Signers: signers, PublicURL: "http://127.0.0.1:8080", LDAPURL: "ldap://127.0.0.1:1389"})
	if _, err := auth.Init(ctx, ca.InitOptions{Name: "demo", CommonName: "Bench Root CA", Organization: "bench", Country: "CN",
		Algorithm: signer.ECDSAP256, Validity: 10 * 365 * 24 * time.Hour}); err != nil {
		return err
	}
	b, err := crl.New(crl.Options{Store: st, CA: auth, Interval: 24 * time.Hour, Validity: 7 * 24 * time.Hour,
		DeltaValidity: time.Hour, DeltaDelay: 2 * time.Second})
	if err != nil {
		return err
	}
	defer b.Close()
	auth.Subscribe(func(_ context.Context, ev ca.Event) {
		if ev.Kind == ca.EventRevoked {
			b.Notify(ev.Cert.Issuer)
		}
	})
	if err := b.Full(ctx, "demo"); err != nil {
		return err
	}
	logf("issuing %d certificates", n)
	first, err := issue(ctx, auth, n, 0)
	if err != nil {
		return err
	}

	os.Setenv("PUBLISHBENCH_PW", rootPW)
	tg := config.DefaultPublishTarget()
	tg.Name, tg.URLs, tg.BaseDN, tg.BindDN, tg.PasswordEnv = "bench", []string{"ldap://" + addr}, base, rootDN, "PUBLISHBENCH_PW"
	pub, err := publish.New(publish.Options{Store: st, Config: config.Publish{Targets: []config.PublishTarget{tg}, BatchSize: 500,
		LagWarning: config.Duration(time.Minute), MaxBackoff: config.Duration(5 * time.Second)}})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go b.Run(runCtx)
	start := time.Now()
	go pub.Run(runCtx)
	waitFor(func() bool { s := pub.Targets(ctx)[0]; return s.Initialised && s.Pending == 0 })
	initial := time.Since(start)
	report("initial state (new target)", n, initial, pub, sl.Pid())

	logf("issuing %d more certificates while the target follows the log", n)
	start = time.Now()
	if _, err := issue(ctx, auth, n, n); err != nil {
		return err
	}
	issued := time.Since(start)
	waitFor(func() bool { return pub.Targets(ctx)[0].Pending == 0 })
	follow := time.Since(start)
	fmt.Printf("| followed changes (issued while publishing) | %d | %s | %.0f | issuance alone took %s | %s |\n", n, follow.Round(time.Millisecond), float64(n)/follow.Seconds(), issued.Round(time.Millisecond), memory(sl.Pid()))

	logf("revoking %d certificates in a burst", revokes)
	start = time.Now()
	for _, c := range first[:min(revokes, len(first))] {
		if _, err := auth.Revoke(ctx, c.Serial, ca.ReasonKeyCompromise); err != nil {
			return err
		}
	}
	burst := time.Since(start)
	last := first[min(revokes, len(first))-1].Serial
	conn, err := ldap.DialURL("ldap://" + addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	waitFor(func() bool {
		res, err := conn.Search(ldap.NewSearchRequest("cn=Bench Root CA,"+base, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)",
			[]string{"certificateRevocationList;binary"}, nil))
		if err != nil || len(res.Entries) == 0 {
			return false
		}
		v := res.Entries[0].GetRawAttributeValue("certificateRevocationList;binary")
		l, err := x509.ParseRevocationList(v)
		if err != nil {
			return false
		}
		for _, e := range l.RevokedCertificateEntries {
			if bytes.Equal(e.SerialNumber.Bytes(), last) {
				return true
			}
		}
		return false
	})
	fmt.Printf("| revocation burst: %d revocations took %s; last revocation to full CRL listing it on the target | %s (crl.delta_delay 2s) | %s |\n",
		revokes, burst.Round(time.Millisecond), (time.Since(start) - burst).Round(time.Millisecond), memory(sl.Pid()))
	sync := "slapd fsyncs every write (back-mdb default)"
	if nosync {
		sync = "slapd with dbnosync (no fsync per write)"
	}
	fmt.Printf("\n%s; certcenter's store with SyncWrites\n", sync)
	fmt.Printf("\n%d CPUs, %s, %s\n", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version())
	return nil
}

func report(what string, n int, d time.Duration, pub *publish.Publisher, slapdPid int) {
	fmt.Println("| phase | certificates | time | entries/s | note | RssAnon / RssFile after the phase |")
	fmt.Println("|---|---:|---:|---:|---|---|")
	fmt.Printf("| %s | %d | %s | %.0f | delivered records %d | %s |\n", what, n, d.Round(time.Millisecond), float64(n)/d.Seconds(), pub.Targets(context.Background())[0].Delivered, memory(slapdPid))
}

// memory is the resident memory of this process (store, CA, CRL builder
// and publisher: certcenter's side) and of slapd, from /proc/PID/status.
func memory(slapdPid int) string {
	return fmt.Sprintf("certcenter %s; slapd %s", benchproc.MemOf(os.Getpid()), benchproc.MemOf(slapdPid))
}

func issue(ctx context.Context, auth *ca.Authority, n, offset int) ([]*store.Cert, error) {
	var out []*store.Cert
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i += 500 {
		var reqs []ca.IssueRequest
		for j := i; j < min(i+500, n); j++ {
			reqs = append(reqs, ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(),
				Subject: &pkix.Name{CommonName: fmt.Sprintf("user-%07d", offset+j), Organization: []string{fmt.Sprintf("Hospital %02d", j%20)}}})
		}
		cs, err := auth.IssueBatch(ctx, reqs)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(50 * time.Millisecond)
	}
}

func startSlapd(dir, addr string, nosync bool) (*slapd.Server, error) {
	sl, err := slapd.Start(context.Background(), slapd.Config{Dir: dir, URLs: []string{"ldap://" + addr + "/"},
		Suffix: suffix, RootDN: rootDN, RootPW: rootPW, NoSync: nosync, MaxSize: 4 << 30})
	if err != nil {
		return nil, err
	}
	if err := sl.AddEntries(
		slapd.Entry{DN: suffix, Attrs: map[string][]string{"objectClass": {"organization"}, "o": {"bench"}}},
		slapd.Entry{DN: base, Attrs: map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"pki"}}},
	); err != nil {
		sl.Stop()
		return nil, err
	}
	return sl, nil
}
