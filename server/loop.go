package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// loop runs a component's background job (a refresher, a schedule, a
// reminder) on a goroutine of its own. start detaches the job from the
// context it is given, which may be a request's or carry a deadline, so only
// stop ends it; stop cancels the job and waits for it to return, no longer
// than stop's context allows.
type loop struct {
	name string
	log  *slog.Logger
	run  func(ctx context.Context) error

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func newLoop(name string, log *slog.Logger, run func(ctx context.Context) error) *loop {
	return &loop{name: name, log: log, run: run}
}

// start starts the job once; later calls do nothing.
func (l *loop) start(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		if err := l.run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			l.log.Error("background job stopped", "job", l.name, "err", err)
		}
	}()
}

// stop cancels the job and waits until it returns or ctx is done. A job
// that never started, or has stopped, returns nil at once.
func (l *loop) stop(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// service is the loop as a service: it runs while the server serves.
func (l *loop) service() service {
	return service{
		name:  l.name,
		start: func(ctx context.Context) error { l.start(ctx); return nil },
		stop:  l.stop,
	}
}

// runLoop adds run as a background job that runs from start to stop.
func (c *components) runLoop(name string, run func(ctx context.Context) error) {
	c.addService(newLoop(name, c.log, run).service())
}
