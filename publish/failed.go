package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/certcenter/certcenter/store"
)

// nsFailed is the store namespace of records a target refused one by one
// ("<target>/<record key>", a failedRecord). The cursor moves past such a
// record; the record is retried on its own schedule until it is written,
// no longer wanted, or superseded by a successful delivery of a newer
// change to it.
const nsFailed = "publish-failed"

// FailedRecord is one record (certificate, CRL, CA certificate) a target
// refused: a DN the mapping cannot build, a schema violation, a missing
// parent that cannot be created. Connection failures are not recorded
// here: they hold the target's cursor instead.
type FailedRecord struct {
	// Key is "cert/<serial hex>", "crl/<file>" or "ca/<name>".
	Key string `json:"key"`
	// DN is the entry that was written ("" when it could not be built).
	DN    string `json:"dn,omitempty"`
	Error string `json:"error"`
	// Since is the first failure of this run of failures; At the last.
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
	Tries int       `json:"tries"`
	// NextRetry is when the record is tried again.
	NextRetry time.Time `json:"next_retry"`
}

func (w *worker) failedKey(recordKey string) string { return w.t.Name + "/" + recordKey }

// loadFailed reads the target's failed records into memory (run start).
func (w *worker) loadFailed(ctx context.Context) error {
	out := map[string]FailedRecord{}
	prefix := w.t.Name + "/"
	err := w.p.opts.Store.View(ctx, func(tx *store.Tx) error {
		return tx.EachBlob(nsFailed, func(k string, v []byte) error {
			rk, ok := strings.CutPrefix(k, prefix)
			if !ok {
				return nil
			}
			var f FailedRecord
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decoding failed record %s: %w", k, err)
			}
			out[rk] = f
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("reading the failed records of %s: %w", w.t.Name, err)
	}
	w.mu.Lock()
	w.failed = out
	w.mu.Unlock()
	w.p.metrics.failedRecords.WithLabelValues(w.t.Name).Set(float64(len(out)))
	return nil
}

// recordBackoff is the wait before a refused record's next try.
func (w *worker) recordBackoff(tries int) time.Duration { return w.backoff(tries) }

// nextRetry is the earliest retry of a failed record (zero: none).
func (w *worker) nextRetry() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var t time.Time
	for _, f := range w.failed {
		if t.IsZero() || f.NextRetry.Before(t) {
			t = f.NextRetry
		}
	}
	return t
}

// retryFailed delivers the failed records whose retry is due, without
// moving the cursor. progressed is false when none was due.
func (w *worker) retryFailed(ctx context.Context) (progressed bool, err error) {
	now := w.p.now()
	w.mu.Lock()
	var keys []string
	for k, f := range w.failed {
		if !now.Before(f.NextRetry) {
			keys = append(keys, k)
		}
	}
	w.mu.Unlock()
	if len(keys) == 0 {
		return false, nil
	}
	if err := w.deliverKeys(ctx, keys); err != nil {
		return false, err
	}
	return true, nil
}

// recordKey is the record a log entry names ("" for kinds other
// consumers need).
func recordKey(e store.LogEntry) string {
	switch e.Kind {
	case store.LogCertIssued, store.LogCertRevoked:
		return "cert/" + e.Key
	case store.LogCACert:
		return "ca/" + e.Key
	case store.LogCRLPublished:
		return "crl/" + e.Key
	}
	return ""
}

// logEntryOf is a log entry that makes a worker deliver record key k.
func logEntryOf(k string) (store.LogEntry, bool) {
	kind, key, ok := strings.Cut(k, "/")
	if !ok {
		return store.LogEntry{}, false
	}
	switch kind {
	case "cert":
		return store.LogEntry{Kind: store.LogCertIssued, Key: key}, true
	case "ca":
		return store.LogEntry{Kind: store.LogCACert, Key: key}, true
	case "crl":
		return store.LogEntry{Kind: store.LogCRLPublished, Key: key}, true
	}
	return store.LogEntry{}, false
}

// failedList is the target's failed records, oldest first, at most n.
func (w *worker) failedList(n int) (int, []FailedRecord) {
	w.mu.Lock()
	out := make([]FailedRecord, 0, len(w.failed))
	for _, f := range w.failed {
		out = append(out, f)
	}
	w.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].Key < out[j].Key
	})
	total := len(out)
	if len(out) > n {
		out = out[:n]
	}
	return total, out
}

// recordError marks a failure that concerns one record only (the target
// is reachable and took the others): the cursor moves on and the record
// is retried by itself.
type recordError struct{ err error }

func (e recordError) Error() string { return e.err.Error() }
func (e recordError) Unwrap() error { return e.err }

// isRecordErr says whether err is about one record rather than the
// connection or the target as a whole.
func isRecordErr(err error) bool {
	var re recordError
	if errors.As(err, &re) {
		return true
	}
	var nd errNoDN
	if errors.As(err, &nd) {
		return true
	}
	return !isConnErr(err)
}

// deliverKeys delivers the current state of the records named by keys
// (change-log keys, as failed records and resync repairs hold them), in key
// order and in batches, without moving the cursor.
func (w *worker) deliverKeys(ctx context.Context, keys []string) error {
	slices.Sort(keys)
	batch := max(w.p.opts.Config.BatchSize, 1)
	for i := 0; i < len(keys); i += batch {
		var es []store.LogEntry
		for _, k := range keys[i:min(i+batch, len(keys))] {
			if e, ok := logEntryOf(k); ok {
				es = append(es, e)
			}
		}
		if err := w.deliver(ctx, es, 0, false, false); err != nil {
			return err
		}
	}
	return nil
}
