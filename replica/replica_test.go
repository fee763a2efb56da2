package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/store"
)

// env is one embedded NATS server (replication factor 1) and a primary's
// store with replication logging on.
type env struct {
	t       *testing.T
	emb     *Embedded
	js      jetstream.JetStream
	primary *store.Store
	stream  Stream
}

func newEnv(t *testing.T, maxMsgs int64) *env {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := config.Default().NATS
	cfg.Embedded, cfg.Listen, cfg.ServerName, cfg.StoreDir = true, addr, "test", t.TempDir()
	emb, err := StartEmbedded(cfg, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, err := Connect(cfg, emb, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, emb: emb, js: js, primary: openStore(t), stream: Stream{Name: "LOG", Subject: "log", Bucket: "snaps", Replicas: 1, MaxAge: time.Hour, MaxMsgs: maxMsgs}}
	e.primary.ReplicateWrites("ocsp")
	return e
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run starts fn in the background and returns its stop.
func run(t *testing.T, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) publisher() *Publisher {
	p, err := NewPublisher(PublisherOptions{Store: e.primary, JetStream: e.js, Stream: e.stream, BatchSize: 7, SnapshotInterval: time.Hour})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) follower(st *store.Store, reg prometheus.Registerer) *Follower {
	f, err := NewFollower(FollowerOptions{Store: st, JetStream: e.js, Stream: e.stream, Name: "r1", BatchSize: 5, Registerer: reg})
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// write stores n OCSP-like blobs and a subscriber, each in its own
// transaction, from index from.
func (e *env) write(from, n int) {
	e.t.Helper()
	for i := from; i < from+n; i++ {
		if err := e.primary.Update(context.Background(), func(tx *store.Tx) error {
			if err := tx.PutBlob("ocsp", fmt.Sprintf("%04x", i), []byte("response "+strconv.Itoa(i))); err != nil {
				return err
			}
			return tx.PutSubscriber(&store.Subscriber{ID: fmt.Sprintf("s%d", i), CommonName: fmt.Sprintf("CN %d", i), Email: fmt.Sprintf("u%d@example.org", i)})
		}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// same waits until st holds exactly the primary's blobs and subscribers.
func (e *env) same(st *store.Store) {
	e.t.Helper()
	dump := func(s *store.Store) string {
		out := ""
		s.View(context.Background(), func(tx *store.Tx) error {
			tx.EachBlob("ocsp", func(k string, v []byte) error { out += k + "=" + string(v) + ";"; return nil })
			return tx.EachSubscriber(func(s *store.Subscriber) error { out += s.ID + "/" + s.CommonName + "/" + s.Email + ";"; return nil })
		})
		return out
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, b := dump(e.primary), dump(st)
		if a == b && a != "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("replica differs from the primary:\nprimary %s\nreplica %s", a, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) ids() []uint64 {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, e.stream.Name)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []uint64
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // aged out meanwhile
		}
		if err != nil {
			e.t.Fatal(err)
		}
		id, _ := strconv.ParseUint(m.Header.Get(hdrMsgID), 10, 64)
		out = append(out, id)
	}
	return out
}

func TestFollowerAppliesAndPublisherRepairs(t *testing.T) {
	e := newEnv(t, 1000)
	e.write(0, 10)
	stopPub := run(t, e.publisher().Run)
	replica := openStore(t)
	f := e.follower(replica, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	run(t, f.Run)
	e.write(10, 10)
	e.same(replica)

	// A crash between commit and publish: the publisher is gone while
	// entries commit; the cursor is wound back as if the last published
	// entries had not been recorded either.
	stopPub()
	before := e.ids()
	e.write(20, 5)
	if err := e.primary.Update(context.Background(), func(tx *store.Tx) error {
		c, _, err := tx.Cursor(CursorName)
		if err != nil {
			return err
		}
		return tx.SetCursor(CursorName, c-4)
	}); err != nil {
		t.Fatal(err)
	}
	run(t, e.publisher().Run)
	e.same(replica)
	ids := e.ids()
	if len(ids) <= len(before) {
		t.Fatalf("nothing published after the restart: %d then %d messages", len(before), len(ids))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("entry %d published after %d: twice or out of order", ids[i], ids[i-1])
		}
	}
	// A redelivered or repeated entry changes nothing: apply the whole
	// stream again from the start.
	if err := replica.Update(context.Background(), func(tx *store.Tx) error { return tx.SetCursor(AppliedCursor, 0) }); err != nil {
		t.Fatal(err)
	}
	e.same(replica)
}

func TestFollowerBehindRetentionRebootstraps(t *testing.T) {
	e := newEnv(t, 6) // the stream keeps 6 messages
	pub := e.publisher()
	run(t, pub.Run)
	e.write(0, 3)
	replica := openStore(t)
	reg := prometheus.NewRegistry()
	f := e.follower(replica, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stop := run(t, f.Run)
	e.same(replica)
	stop()
	// While the replica is away, more changes than the stream keeps.
	e.write(3, 20)
	for pub.Published() == 0 || len(e.ids()) < 6 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := pub.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	f2 := e.follower(replica, prometheus.NewRegistry())
	run(t, f2.Run)
	e.same(replica)
	if n := testutil.ToFloat64(f2.m.bootstraps); n != 1 {
		t.Fatalf("re-bootstraps: %v, want 1", n)
	}
	if err := f2.Ready(context.Background()); err != nil {
		t.Fatalf("not ready after catching up: %v", err)
	}
}

// publishedThrough waits until the publisher's cursor reaches the change
// log's head.
func (e *env) publishedThrough() {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := e.primary.LogStats(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		var c uint64
		if err := e.primary.View(ctx, func(tx *store.Tx) error {
			c, _, err = tx.Cursor(CursorName)
			return err
		}); err != nil {
			e.t.Fatal(err)
		}
		if c >= st.Head {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("publisher's cursor %d short of the head %d", c, st.Head)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPublisherRestartAfterSkippedEntries: the last entries the publisher
// handled before it restarted resolved to no records (as a revocation's
// cert-revoked or a CRL's crl-published do), so they are not in the
// stream. The next message must follow the stream's last one, not the
// cursor: a replica that applied the whole stream goes on without loading
// the snapshot again (it used to see a gap and reload an older snapshot in
// a loop).
func TestPublisherRestartAfterSkippedEntries(t *testing.T) {
	e := newEnv(t, 1000)
	e.write(0, 5)
	stopPub := run(t, e.publisher().Run)
	replica := openStore(t)
	reg := prometheus.NewRegistry()
	f := e.follower(replica, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	run(t, f.Run)
	e.write(5, 3)
	// A change whose last entry names no replicated record.
	if err := e.primary.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutBlob("ocsp", "ff01", []byte("revoked")); err != nil {
			return err
		}
		return tx.AppendLog(store.LogEntry{Kind: store.LogCertRevoked, Key: "ff01"})
	}); err != nil {
		t.Fatal(err)
	}
	e.publishedThrough()
	e.same(replica)
	stopPub()

	run(t, e.publisher().Run)
	e.write(8, 5)
	e.same(replica)
	if n := testutil.ToFloat64(f.m.bootstraps); n != 1 {
		t.Fatalf("bootstraps: %v, want 1 (the first): the restart made the replica reload", n)
	}
	if err := f.Ready(ctx); err != nil {
		t.Fatalf("not ready after catching up: %v", err)
	}
}

// TestPublisherAfterLostStreamRefreshesSnapshot: the stream was lost while
// the publisher was down, so its next message names the cursor and every
// replica must reload; the snapshot, older than the cursor, is replaced so
// that reloading it closes the gap, and the replica catches up.
func TestPublisherAfterLostStreamRefreshesSnapshot(t *testing.T) {
	e := newEnv(t, 1000)
	e.write(0, 5)
	stopPub := run(t, e.publisher().Run)
	replica := openStore(t)
	reg := prometheus.NewRegistry()
	f := e.follower(replica, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopFol := run(t, f.Run)
	e.write(5, 3)
	e.same(replica)
	stopPub()
	stopFol()
	// Written while the publisher is down, then the stream is lost: the
	// replica can only get these from a snapshot.
	e.write(8, 3)
	if err := e.js.DeleteStream(ctx, e.stream.Name); err != nil {
		t.Fatal(err)
	}
	if err := e.primary.Update(ctx, func(tx *store.Tx) error {
		st, err := e.primary.LogStats(ctx)
		if err != nil {
			return err
		}
		return tx.SetCursor(CursorName, st.Head)
	}); err != nil {
		t.Fatal(err)
	}
	run(t, e.publisher().Run)
	f2 := e.follower(replica, prometheus.NewRegistry())
	run(t, f2.Run)
	e.write(11, 3)
	e.same(replica)
	if n := testutil.ToFloat64(f2.m.bootstraps); n != 1 {
		t.Fatalf("re-bootstraps: %v, want 1", n)
	}
	if err := f2.Ready(ctx); err != nil {
		t.Fatalf("not ready after catching up: %v", err)
	}
}
