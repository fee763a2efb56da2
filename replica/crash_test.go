package replica

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/store"
)

// TestPrimaryKilledBetweenCommitAndPublish runs a primary (a store with
// replication logging, writing and publishing at once) in a child process
// and kills it with SIGKILL while it writes, several times. Each restart
// repairs from the cursor and the stream: in the end the stream holds every
// committed entry exactly once, in order, and a replica equals the primary.
func TestPrimaryKilledBetweenCommitAndPublish(t *testing.T) {
	if os.Getenv("REPLICA_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	e := newEnv(t, 100000)
	dir := t.TempDir()
	e.primary.Close() // the child owns the primary's store in dir
	for i := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestPrimaryKilledBetweenCommitAndPublish$")
		cmd.Env = append(os.Environ(), "REPLICA_CRASH_CHILD="+dir, "REPLICA_CRASH_NATS="+e.emb.ClientURL(), "REPLICA_CRASH_FROM="+strconv.Itoa(i*1000))
		out, err := os.Create(dir + fmt.Sprintf("/child%d.log", i))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(800+300*i) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		out.Close()
	}
	// The last start: repair, publish what is left, stop.
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	st.ReplicateWrites("ocsp")
	e.primary = st
	stop := run(t, e.publisher().Run)
	for deadline := time.Now().Add(60 * time.Second); ; {
		var cur uint64
		if err := st.View(context.Background(), func(tx *store.Tx) error {
			var err error
			cur, _, err = tx.Cursor(CursorName)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		rest, err := st.ReadLog(context.Background(), cur, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(rest) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the publisher did not reach the end of the log (cursor %d)", cur)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	ids := e.ids()
	if len(ids) < 10 {
		t.Fatalf("only %d messages published: the children did not write", len(ids))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("entry %d published after %d: twice or out of order", ids[i], ids[i-1])
		}
	}
	// Every committed record entry after the first published one is in
	// the stream (those before it are in the first snapshot).
	es, err := st.ReadLog(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	in := map[uint64]bool{}
	for _, id := range ids {
		in[id] = true
	}
	for _, en := range es {
		if en.Kind == store.LogRecord && en.Seq > ids[0] && !in[en.Seq] {
			t.Fatalf("committed entry %d is not in the stream", en.Seq)
		}
	}
	replica := openStore(t)
	f := e.follower(replica, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	run(t, f.Run)
	e.same(replica)
}

// crashChild is the primary in the child process: it writes and publishes
// until it is killed.
func crashChild() {
	dir, url := os.Getenv("REPLICA_CRASH_CHILD"), os.Getenv("REPLICA_CRASH_NATS")
	from, _ := strconv.Atoi(os.Getenv("REPLICA_CRASH_FROM"))
	st, err := store.Open(store.Options{Dir: dir, SyncWrites: true})
	if err != nil {
		panic(err)
	}
	st.ReplicateWrites("ocsp")
	cfg := config.Default().NATS
	cfg.URL = url
	nc, err := Connect(cfg, nil, "child", slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	js, _ := jetstream.New(nc)
	p, _ := NewPublisher(PublisherOptions{Store: st, JetStream: js, Stream: Stream{Name: "LOG", Subject: "log", Bucket: "snaps", Replicas: 1, MaxAge: time.Hour, MaxMsgs: 100000}, BatchSize: 7, SnapshotInterval: time.Hour})
	go p.Run(context.Background())
	for i := from; ; i++ {
		st.Update(context.Background(), func(tx *store.Tx) error {
			if err := tx.PutBlob("ocsp", fmt.Sprintf("%05x", i), []byte("response "+strconv.Itoa(i))); err != nil {
				return err
			}
			return tx.PutSubscriber(&store.Subscriber{ID: fmt.Sprintf("s%d", i), CommonName: fmt.Sprintf("CN %d", i)})
		})
	}
}
