package server

import (
	"log/slog"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/workday"
	"github.com/certcenter/certcenter/ra"
)

// raCalendar builds the RA's working-day calendar, logging to log, and says
// at start-up which years it knows, warning about any year a deadline
// computed now could reach without data (a Spring Festival counted as
// working days is otherwise silent).
func raCalendar(cfg config.RA, log *slog.Logger, now time.Time) (*workday.Calendar, error) {
	cal, err := ra.CalendarFrom(cfg)
	if err != nil {
		return nil, err
	}
	log = log.With("component", "workday")
	cal = cal.WithLogger(log)
	longest := max(cfg.IssueDeadlineDays, cfg.RenewDeadlineDays, cfg.RevokeDeadlineDays)
	missing := cal.CheckCoverage(now, longest)
	log.Info("working-day calendar", "builtin", cfg.Calendar.Builtin, "known_years", cal.KnownYears(),
		"overrides_file", cfg.Calendar.OverridesFile, "years_missing_for_current_deadlines", missing)
	return cal, nil
}
