package server

import (
	"context"
	"errors"
	"log/slog"
	"testing"
)

// A loop outlives the context it was started with, ends on stop, and a stop
// whose context ends first returns that error instead of waiting for a job
// that does not return. Stopping a loop that never started, or twice, is
// harmless.
func TestLoop(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if err := newLoop("idle", log, func(context.Context) error { return nil }).stop(context.Background()); err != nil {
		t.Errorf("stop before start: %v", err)
	}

	running := make(chan struct{})
	l := newLoop("job", log, func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		return ctx.Err()
	})
	startCtx, cancelStart := context.WithCancel(context.Background())
	l.start(startCtx)
	l.start(startCtx) // a second start does not run a second job
	<-running
	cancelStart()
	select {
	case <-l.done:
		t.Fatal("the job ended with the context it was started with")
	default:
	}
	if err := l.stop(context.Background()); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := l.stop(context.Background()); err != nil {
		t.Errorf("second stop: %v", err)
	}

	release := make(chan struct{})
	stuck := newLoop("stuck", log, func(context.Context) error { <-release; return nil })
	stuck.start(context.Background())
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := stuck.stop(expired); !errors.Is(err, context.Canceled) {
		t.Errorf("stop of a stuck job with an expired context: %v", err)
	}
	close(release)
	if err := stuck.stop(context.Background()); err != nil {
		t.Errorf("stop once the job returned: %v", err)
	}
}
