package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// snapshotName is the one snapshot object in the bucket; each new one
// replaces it.
const snapshotName = "snapshot"

// metaSeq is the object's metadata key of the change-log position the
// snapshot covers.
const metaSeq = "certcenter-seq"

// Snapshot stores the store's backup stream in the object store with the
// change-log position it covers, and returns that position. The position
// is read before the backup starts: every entry up to it is committed and
// in the backup; entries after it may be too, and a replica applies them
// again harmlessly.
func (p *Publisher) Snapshot(ctx context.Context) (uint64, error) {
	begin := time.Now()
	st, err := p.st.LogStats(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the change-log head: %w", err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(p.st.Backup(ctx, pw)) }()
	_, err = p.snaps.Put(ctx, jetstream.ObjectMeta{Name: snapshotName, Metadata: map[string]string{metaSeq: strconv.FormatUint(st.Head, 10)}}, pr)
	pr.CloseWithError(err)
	if err != nil {
		return 0, fmt.Errorf("storing the snapshot in %s: %w", p.opts.Stream.Bucket, err)
	}
	p.m.snapSeq.Set(float64(st.Head))
	p.m.snapTime.Set(time.Since(begin).Seconds())
	p.log.Info("snapshot stored", "seq", st.Head, "elapsed", time.Since(begin).Round(time.Millisecond))
	return st.Head, nil
}

// snapshotCovering stores a snapshot if there is none, or if the one
// stored covers less than need: after setUp made the next message name a
// predecessor beyond the stream's last message, a replica can only close
// that gap from a snapshot at least that new, and an older one would have
// it load the snapshot again and again until the next scheduled one.
func (p *Publisher) snapshotCovering(ctx context.Context, need uint64) error {
	info, err := p.snaps.GetInfo(ctx, snapshotName)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		_, err = p.Snapshot(ctx)
		return err
	}
	if err != nil {
		return fmt.Errorf("looking for the snapshot: %w", err)
	}
	if need == 0 {
		return nil
	}
	if seq, perr := strconv.ParseUint(info.Metadata[metaSeq], 10, 64); perr == nil && seq >= need {
		return nil
	}
	p.log.Info("the snapshot is older than the change-log stream's new start; storing a new one", "snapshot", info.Metadata[metaSeq], "need", need)
	_, err = p.Snapshot(ctx)
	return err
}
