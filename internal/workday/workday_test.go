package workday

import (
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, ChinaLocation())
	if err != nil {
		panic(err)
	}
	return t
}

func TestIsWorkingDay(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		name string
		day  string
		want bool
	}{
		{"ordinary weekday", "2026-03-10", true},
		{"ordinary saturday", "2026-03-14", false},
		{"new year holiday thursday", "2026-01-01", false},
		{"make-up sunday after new year", "2026-01-04", true},
		{"spring festival monday", "2026-02-23", false},
		{"make-up saturday before spring festival", "2026-02-14", true},
		{"make-up saturday after spring festival", "2026-02-28", true},
		{"qingming monday", "2026-04-06", false},
		{"labour day tuesday", "2026-05-05", false},
		{"make-up saturday may 9", "2026-05-09", true},
		{"national day wednesday", "2026-10-07", false},
		{"make-up sunday sep 20", "2026-09-20", true},
		{"make-up saturday oct 10", "2026-10-10", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDate(tc.day)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.IsWorkingDay(d); got != tc.want {
				t.Errorf("IsWorkingDay(%s) = %v, want %v", tc.day, got, tc.want)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		name     string
		received string
		n        int
		want     string
	}{
		{"ok/plain week", "2026-03-09 10:00", 5, "2026-03-17 00:00"},
		{"ok/friday one day", "2026-03-13 16:00", 1, "2026-03-17 00:00"},
		{"ok/received on saturday", "2026-03-14 09:00", 1, "2026-03-17 00:00"},
		// Received Thu 2026-04-30: Fri 1 May..Tue 5 May are holidays, Wed 6,
		// Thu 7, Fri 8 work, Sat 9 May is a make-up working day, Mon 11.
		{"ok/across labour day and make-up saturday", "2026-04-30 11:00", 5, "2026-05-12 00:00"},
		// Received Fri 13 Feb: Sat 14 is a make-up day, then nine days off.
		{"ok/spring festival", "2026-02-13 17:00", 2, "2026-02-25 00:00"},
		{"ok/renewal across national day", "2026-09-30 12:00", 2, "2026-10-10 00:00"},
		{"ok/zero days", "2026-03-09 10:00", 0, "2026-03-10 00:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := c.Deadline(at(tc.received), tc.n)
			if want := at(tc.want); !got.Equal(want) {
				t.Errorf("Deadline(%s, %d) = %s, want %s", tc.received, tc.n, got, want)
			}
		})
	}
}

func TestConfiguredCalendar(t *testing.T) {
	d := func(s string) Date { x, _ := ParseDate(s); return x }
	c := New(Options{Location: time.UTC, Holidays: []Date{d("2027-02-08")}, MakeupWorkdays: []Date{d("2027-02-06")}})
	if c.IsWorkingDay(d("2027-02-08")) || !c.IsWorkingDay(d("2027-02-06")) {
		t.Fatal("configured holiday or make-up day ignored")
	}
	if got := c.WorkingDaysBetween(time.Date(2027, 2, 5, 0, 0, 0, 0, time.UTC), time.Date(2027, 2, 10, 0, 0, 0, 0, time.UTC)); got != 3 {
		t.Errorf("WorkingDaysBetween = %d, want 3 (Sat 6 make-up, Tue 9, Wed 10)", got)
	}
	if _, err := ParseDate("2027-13-01"); err == nil {
		t.Error("bad date accepted")
	}
}

func BenchmarkDeadline(b *testing.B) {
	c := Default()
	t0 := at("2026-09-28 10:00")
	b.ReportAllocs()
	for b.Loop() {
		c.Deadline(t0, 5)
	}
}
