package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/workday"
)

// TestRACalendarStartupWarning: at start-up the RA's calendar says which
// years it knows and warns about a year without data that the deadlines of
// requests received now would reach; an override file for that year
// silences it and its days count.
func TestRACalendarStartupWarning(t *testing.T) {
	lateDecember := time.Date(2027, 12, 27, 10, 0, 0, 0, workday.ChinaLocation())
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cal, err := raCalendar(config.Default().RA, log, lateDecember)
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "year=2028") || !strings.Contains(out, "known_years=2002-2027") {
		t.Errorf("no start-up warning about 2028:\n%s", out)
	}
	// 2027 is known: the Spring Festival is not worked.
	if cal.IsWorkingDay(workday.Date{Year: 2027, Month: time.February, Day: 8}) {
		t.Error("2027-02-08 (Spring Festival) is a working day")
	}

	overrides := filepath.Join(t.TempDir(), "2028.csv")
	os.WriteFile(overrides, []byte("2028-01-03,holiday,New Year\n"), 0o600)
	cfg := config.Default().RA
	cfg.Calendar.OverridesFile = overrides
	logs.Reset()
	cal, err = raCalendar(cfg, log, lateDecember)
	if err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); strings.Contains(out, "level=WARN") || !strings.Contains(out, "known_years=2002-2028") {
		t.Errorf("start-up log with 2028 overridden:\n%s", out)
	}
	if got := cal.MissingYears(lateDecember, lateDecember.AddDate(0, 1, 0)); !slices.Equal(got, []int(nil)) {
		t.Errorf("missing years = %v", got)
	}
	// Received Mon 27 Dec 2027, 5 working days: 28, 29, 30, 31 Dec, then
	// Mon 3 Jan 2028 is a holiday by the override, so Tue 4 Jan.
	if got, want := cal.Deadline(lateDecember, 5), time.Date(2028, 1, 5, 0, 0, 0, 0, workday.ChinaLocation()); !got.Equal(want) {
		t.Errorf("deadline = %s, want %s", got, want)
	}
}

// TestServerLogsCalendar: Start builds the RA's calendar through raCalendar
// (the start-up line is in the server's log).
func TestServerLogsCalendar(t *testing.T) {
	cfg := testConfig(t)
	var logs bytes.Buffer
	s, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Stop(context.Background())
	if !strings.Contains(logs.String(), `msg="working-day calendar" component=workday builtin=cn known_years=2002-2027`) {
		t.Errorf("no calendar line in the start-up log:\n%s", logs.String())
	}
}
