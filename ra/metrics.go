package ra

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/store"
)

// metrics are the RA's Prometheus series. The open and overdue gauges come
// from an in-memory table of the open requests (kind and deadline), loaded
// from the store once and then kept in step by the store's change
// notifications: a scrape reads only the requests changed since the last
// one, never every request.
type metrics struct {
	r           *RA
	submitted   *prometheus.CounterVec
	transitions *prometheus.CounterVec
	refused     *prometheus.CounterVec
	reminders   *prometheus.CounterVec
	open        *prometheus.Desc
	overdue     *prometheus.Desc
	reqs        *openRequests
}

func newMetrics(r *RA) *metrics {
	return &metrics{
		r: r,
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_ra_requests_submitted_total",
			Help: "RA requests received, by kind."}, []string{"kind"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_ra_transitions_total",
			Help: "RA request state changes, by kind and new state."}, []string{"kind", "state"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_ra_applications_refused_total",
			Help: "Applications refused, by cause (cms, content, signer, org, duplicate, unsigned)."}, []string{"cause"}),
		reminders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_ra_reminders_total",
			Help: "Renewal reminders, by channel and result."}, []string{"channel", "result"}),
		open:    prometheus.NewDesc("certcenter_ra_requests_open", "RA requests not finished, by kind.", []string{"kind"}, nil),
		overdue: prometheus.NewDesc("certcenter_ra_requests_overdue", "RA requests not finished by their working-day deadline, by kind.", []string{"kind"}, nil),
		reqs:    newOpenRequests(r.st),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.submitted.Describe(ch)
	m.transitions.Describe(ch)
	m.refused.Describe(ch)
	m.reminders.Describe(ch)
	ch <- m.open
	ch <- m.overdue
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.submitted.Collect(ch)
	m.transitions.Collect(ch)
	m.refused.Collect(ch)
	m.reminders.Collect(ch)
	open, overdue := map[string]float64{}, map[string]float64{}
	for _, k := range []string{KindIssue, KindRenew, KindRevoke} {
		open[k], overdue[k] = 0, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.reqs.refresh(ctx); err != nil {
		m.r.log.Warn("updating the RA request gauges", "err", err)
	}
	m.reqs.each(func(kind string, due time.Time) {
		open[kind]++
		if !due.IsZero() && m.r.now().After(due) {
			overdue[kind]++
		}
	})
	for k, v := range open {
		ch <- prometheus.MustNewConstMetric(m.open, prometheus.GaugeValue, v, k)
		ch <- prometheus.MustNewConstMetric(m.overdue, prometheus.GaugeValue, overdue[k], k)
	}
}

// openRequests is the table of open requests behind the gauges.
type openRequests struct {
	st *store.Store

	dirtyMu sync.Mutex
	dirty   map[string]bool // requests written since the last refresh

	mu     sync.Mutex
	loaded bool
	open   map[string]openRequest
}

type openRequest struct {
	kind string
	due  time.Time
}

func newOpenRequests(st *store.Store) *openRequests {
	o := &openRequests{st: st, dirty: map[string]bool{}, open: map[string]openRequest{}}
	if st == nil {
		return o // an RA built only to list its routes
	}
	// The watcher runs on committing goroutines: it only notes the ID.
	st.Watch(func(cs []store.Change) {
		o.dirtyMu.Lock()
		for _, c := range cs {
			if c.Kind == store.KindRARequest {
				o.dirty[c.Key] = true
			}
		}
		o.dirtyMu.Unlock()
	})
	return o
}

// refresh loads the table the first time and afterwards re-reads the
// requests written since the last refresh. A request written while it runs
// is noted again and re-read next time.
func (o *openRequests) refresh(ctx context.Context) error {
	if o.st == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dirtyMu.Lock()
	ids := o.dirty
	o.dirty = map[string]bool{}
	o.dirtyMu.Unlock()
	put := func(rq *store.RARequest) {
		if rq.DoneAt.IsZero() {
			o.open[rq.ID] = openRequest{kind: rq.Kind, due: rq.DueAt}
		} else {
			delete(o.open, rq.ID)
		}
	}
	var err error
	if !o.loaded {
		err = o.st.View(ctx, func(tx *store.Tx) error {
			return tx.EachRARequest(func(rq *store.RARequest) error { put(rq); return nil })
		})
		o.loaded = err == nil
	} else if len(ids) > 0 {
		err = o.st.View(ctx, func(tx *store.Tx) error {
			for id := range ids {
				rq, err := tx.RARequest(id)
				if errors.Is(err, store.ErrNotFound) {
					delete(o.open, id)
					continue
				} else if err != nil {
					return err
				}
				put(rq)
			}
			return nil
		})
	}
	if err != nil {
		// Try these again at the next scrape.
		o.dirtyMu.Lock()
		for id := range ids {
			o.dirty[id] = true
		}
		o.dirtyMu.Unlock()
	}
	return err
}

func (o *openRequests) each(fn func(kind string, due time.Time)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.open {
		fn(r.kind, r.due)
	}
}
