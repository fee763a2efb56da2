// Command desk measures the service desk's ticket store: it seeds -count
// tickets through desk.Create (each with its audit entry, duplicate check
// and indexes, as the API does), then, with the store reopened as the
// server opens it (-sync: fsync per commit, the server's default), measures
// the latency of further creations and of the listings agents and
// self-service users make, and of one SLA evaluation when 1% of the tickets
// are due. It prints p50/p99 and the process's resident memory
// (/proc/self/status).
//
//	go run ./bench/desk -count 100000 -dir /tmp/desk-bench
//
// It calls the desk in process (no HTTP, no TLS): the figures are the
// store's and the desk's, without the API's constant cost per request.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/benchproc"
	"github.com/certcenter/certcenter/store"
)

func main() {
	count := flag.Int("count", 100000, "tickets to seed")
	measure := flag.Int("measure", 2000, "creations and listings measured after seeding")
	dir := flag.String("dir", "", "store directory (default a new temporary one, removed at the end)")
	sync := flag.Bool("sync", true, "fsync every commit while measuring (the server's default)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "desk-bench-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	ctx := context.Background()
	// The clock: a Tuesday morning, moved on a second per ticket so the
	// tickets' deadlines spread over days.
	var nowNS atomic.Int64
	base := time.Date(2026, 4, 14, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	nowNS.Store(base.UnixNano())
	now := func() time.Time { return time.Unix(0, nowNS.Load()) }

	open := func(syncWrites bool) (*store.Store, *desk.Desk) {
		st, err := store.Open(store.Options{Dir: filepath.Join(*dir, "db"), SyncWrites: syncWrites, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			log.Fatal(err)
		}
		d, err := desk.New(desk.Options{Store: st, Audit: audit.New(audit.Options{Store: st, Now: now}), Config: config.Default().Desk, Now: now})
		if err != nil {
			log.Fatal(err)
		}
		return st, d
	}
	orgs := 300
	st, d := open(false)
	var have int
	if err := st.View(ctx, func(tx *store.Tx) error {
		return tx.EachOrg(func(*store.Org) error { have++; return nil })
	}); err != nil {
		log.Fatal(err)
	}
	if have < orgs {
		if err := st.Update(ctx, func(tx *store.Tx) error {
			for i := range orgs {
				if err := tx.InsertOrg(&store.Org{ID: fmt.Sprintf("org-%03d", i), Name: "Hospital", CreatedAt: now()}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			log.Fatal(err)
		}
	}
	cats := config.DefaultDeskCategories
	body := func(i int) *desk.CreateRequest {
		c := &desk.CreateRequest{Channel: desk.Channels[i%len(desk.Channels)], Category: cats[i%len(cats)], Class: desk.Classes[i%7%3],
			Subject: fmt.Sprintf("ticket %d: signing fails in the client", i), Description: "客户端提示签名失败，已重装驱动",
			Requester: store.TicketRequester{Kind: "person", Name: "Zhang San", Phone: fmt.Sprintf("+86 10 %08d", i%50000)}}
		if i%3 == 0 {
			c.Requester = store.TicketRequester{Kind: "organisation", Name: "Hospital", OrgID: fmt.Sprintf("org-%03d", (i/3)%orgs)}
		}
		return c
	}
	start := time.Now()
	for i := 0; i < *count; i++ {
		nowNS.Add(int64(time.Second))
		if _, err := d.Create(ctx, "staff:bench", body(i)); err != nil {
			log.Fatalf("seeding ticket %d: %v", i, err)
		}
		// The server's loop evaluates the clocks every minute.
		if i%60 == 59 {
			if _, err := d.Evaluate(ctx); err != nil {
				log.Fatal(err)
			}
		}
		if (i+1)%20000 == 0 {
			fmt.Fprintf(os.Stderr, "seeded %d tickets in %s\n", i+1, time.Since(start).Round(time.Second))
		}
	}
	seedTime := time.Since(start)
	if err := st.Close(); err != nil {
		log.Fatal(err)
	}
	st, d = open(*sync)
	defer st.Close()
	runtime.GC()

	fmt.Printf("tickets seeded: %d in %s (%.0f/s, no fsync)\n", *count, seedTime.Round(time.Second), float64(*count)/seedTime.Seconds())
	fmt.Printf("measured with sync_writes=%v, %d rounds each, GOMAXPROCS=%d\n\n", *sync, *measure, runtime.GOMAXPROCS(0))
	fmt.Println("| operation | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|")
	report := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
		fmt.Printf("| %s | %s | %s | %s |\n", name, q(0.5).Round(time.Microsecond), q(0.99).Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond))
	}
	timeIt := func(name string, n int, fn func(i int) error) {
		ds := make([]time.Duration, 0, n)
		for i := range n {
			t0 := time.Now()
			if err := fn(i); err != nil {
				log.Fatalf("%s: %v", name, err)
			}
			ds = append(ds, time.Since(t0))
		}
		report(name, ds)
	}
	timeIt("create (duplicate check, audit, indexes)", *measure, func(i int) error {
		nowNS.Add(int64(time.Second))
		_, err := d.Create(ctx, "staff:bench", body(*count+i))
		return err
	})
	timeIt("list first page (100)", *measure, func(int) error {
		_, _, err := d.List(ctx, desk.Filter{}, "", 100)
		return err
	})
	timeIt("list page after T00050000 (100)", *measure, func(int) error {
		_, _, err := d.List(ctx, desk.Filter{}, "T00050000", 100)
		return err
	})
	timeIt("list filtered group=hotline_agent class=major (100)", *measure, func(int) error {
		_, _, err := d.List(ctx, desk.Filter{Group: desk.GroupHotline, Class: "major"}, "", 100)
		return err
	})
	timeIt("get one ticket", *measure, func(i int) error {
		_, err := d.Get(ctx, fmt.Sprintf("T%08d", 1+i*37%*count))
		return err
	})
	timeIt(fmt.Sprintf("one organisation's tickets (self-service index, %d per organisation)", *count/3/orgs), *measure/10, func(i int) error {
		n := 0
		return st.View(ctx, func(tx *store.Tx) error {
			return tx.TicketsByOrg(fmt.Sprintf("org-%03d", i%orgs), func(*store.Ticket) error { n++; return nil })
		})
	})
	// The evaluation loop, once a minute of the clock: the due index hands
	// over only the tickets whose warning or deadline came in that minute.
	var evals []time.Duration
	dueTotal, changedTotal := 0, 0
	for range 60 {
		nowNS.Add(int64(time.Minute))
		var due int
		if err := st.View(ctx, func(tx *store.Tx) error {
			return tx.TicketsDue(time.Time{}, now(), func(string, time.Time) error { due++; return nil })
		}); err != nil {
			log.Fatal(err)
		}
		t0 := time.Now()
		changed, err := d.Evaluate(ctx)
		if err != nil {
			log.Fatal(err)
		}
		evals = append(evals, time.Since(t0))
		dueTotal += due
		changedTotal += changed
	}
	report(fmt.Sprintf("SLA evaluation per minute (%d tickets due in 60 minutes, %d changed)", dueTotal, changedTotal), evals)
	var pendingN int
	t0 := time.Now()
	if err := st.View(ctx, func(tx *store.Tx) error {
		return tx.TicketsDue(time.Time{}, now().AddDate(1, 0, 0), func(string, time.Time) error { pendingN++; return nil })
	}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\nopen tickets with a pending deadline: %d (reading the whole due index: %s)\n", pendingN, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	rep, err := d.BuildReport(ctx, base.Add(-time.Hour), now().Add(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("report over %d tickets: %s\n", rep.Tickets, time.Since(t0).Round(time.Millisecond))
	runtime.GC()
	fmt.Printf("resident memory: %s\n", benchproc.MemOf(os.Getpid()))
}
