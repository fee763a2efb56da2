package workday

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func day(t testing.TB, s string) Date {
	t.Helper()
	d, err := ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestChina2027: the built-in calendar knows the State Council's 2027
// notice, which the hand-written 2026 list did not: Spring Festival
// 5-13 Feb 2027 are rest days, Sun 31 Jan and Sun 14 Feb are worked.
func TestChina2027(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		day  string
		want bool
	}{
		{"2027-02-04", true},  // Thursday before the holiday
		{"2027-02-05", false}, // Spring Festival, Friday
		{"2027-02-08", false}, // Monday
		{"2027-02-09", false},
		{"2027-02-10", false},
		{"2027-02-11", false},
		{"2027-02-12", false},
		{"2027-02-13", false}, // Saturday, a rest day anyway
		{"2027-01-31", true},  // make-up Sunday
		{"2027-02-14", true},  // make-up Sunday
		{"2027-02-15", true},  // Monday after
		{"2027-05-08", true},  // make-up Saturday after Labour Day
		{"2027-05-04", false}, // Labour Day, Tuesday
		{"2027-10-07", false}, // National Day, Thursday
		{"2027-10-09", true},  // make-up Saturday after National Day
		{"2027-03-13", false}, // ordinary Saturday
	} {
		if got := c.IsWorkingDay(day(t, tc.day)); got != tc.want {
			t.Errorf("IsWorkingDay(%s) = %v, want %v", tc.day, got, tc.want)
		}
	}
	// Received Thu 4 Feb 2027: 5-13 off, Sun 14 is worked, then Mon 15.
	if got, want := c.Deadline(at("2027-02-04 10:00"), 2), at("2027-02-16 00:00"); !got.Equal(want) {
		t.Errorf("deadline across the 2027 Spring Festival = %s, want %s", got, want)
	}
	for _, y := range []int{2002, 2026, 2027} {
		if !c.Covers(y) {
			t.Errorf("Covers(%d) = false", y)
		}
	}
	for _, y := range []int{2001, 2028, 2100} {
		if c.Covers(y) {
			t.Errorf("Covers(%d) = true", y)
		}
	}
}

// TestChinaMatches2026Notice: the library's 2026 data is the notice
// (国办发明电〔2025〕7号) as this package used to carry it by hand.
func TestChinaMatches2026Notice(t *testing.T) {
	s := China()
	in2026 := func(ds []Date) []string {
		var out []string
		for _, d := range ds {
			if d.Year == 2026 {
				out = append(out, d.String())
			}
		}
		slices.Sort(out)
		return out
	}
	if got, want := in2026(s.Holidays), in2026(china2026Holidays()); !slices.Equal(got, want) {
		t.Errorf("2026 holidays:\n got  %v\n want %v", got, want)
	}
	if got, want := in2026(s.MakeupWorkdays), in2026(china2026MakeupWorkdays()); !slices.Equal(got, want) {
		t.Errorf("2026 make-up days:\n got  %v\n want %v", got, want)
	}
}

func TestOverrides(t *testing.T) {
	file := `# date,kind[,note]
2027-09-26,holiday,make-up Sunday cancelled

2027-06-11 , workday
2028-01-03,holiday,"New Year, observed"
2028-01-08,workday
`
	ov, err := ParseOverrides(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(ov) != 4 || ov[3].Line != 6 || ov[2].Note != "New Year, observed" {
		t.Fatalf("ParseOverrides = %+v", ov)
	}
	var logs bytes.Buffer
	c := New(Options{Statutory: China(), Overrides: ov, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for _, tc := range []struct {
		day  string
		want bool
	}{
		{"2027-09-26", false}, // lunar-go: make-up Sunday; the override wins
		{"2027-06-11", true},  // an ordinary Friday, stays working
		{"2028-01-03", false}, // a Monday made a holiday
		{"2028-01-08", true},  // a Saturday made a working day
		{"2028-01-04", true},
	} {
		if got := c.IsWorkingDay(day(t, tc.day)); got != tc.want {
			t.Errorf("IsWorkingDay(%s) = %v, want %v", tc.day, got, tc.want)
		}
	}
	if !c.Covers(2028) {
		t.Error("a year the override file has dates for is not counted as known")
	}
	c.Deadline(at("2028-01-01 10:00"), 3)
	if logs.Len() != 0 {
		t.Errorf("warned about a year the overrides cover: %s", logs.String())
	}

	path := filepath.Join(t.TempDir(), "overrides.csv")
	os.WriteFile(path, []byte(file), 0o600)
	if got, err := ReadOverrides(path); err != nil || len(got) != 4 {
		t.Errorf("ReadOverrides = %v, %v", got, err)
	}
	if _, err := ReadOverrides(filepath.Join(t.TempDir(), "missing.csv")); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("ReadOverrides of a missing file: %v", err)
	}
	for _, tc := range []struct{ name, in, msg string }{
		{"bad date", "2027-01-01,holiday\n2027-02-30,holiday\n", "line 2: \"2027-02-30\" is not a YYYY-MM-DD date"},
		{"bad kind", "2027-01-01,vacation\n", "line 1: kind \"vacation\" is not holiday or workday"},
		{"no kind", "# x\n2027-01-01\n", "line 2: want date,kind[,note]"},
		{"too many fields", "2027-01-01,holiday,a,b\n", "line 1: want date,kind[,note]"},
		{"twice", "2027-01-01,holiday\n2027-01-01,workday\n", "line 2: 2027-01-01 is already set on line 1"},
		{"bad quoting", "2027-01-01,holiday,\"x\n", "line 1"},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			_, err := ParseOverrides(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ParseOverrides(%q) = %v, want an error containing %q", tc.in, err, tc.msg)
			}
		})
	}
}

// TestYearWithoutData: a deadline that reaches a year the calendar has no
// statutory data for is reported, once per year, and the start-up check
// names the years the next deadlines may reach.
func TestYearWithoutData(t *testing.T) {
	var logs bytes.Buffer
	c := New(Options{Statutory: China(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c.Deadline(at("2027-06-01 10:00"), 5)
	if logs.Len() != 0 {
		t.Fatalf("warned inside a covered year: %s", logs.String())
	}
	// Received Thu 30 Dec 2027: the deadline runs into 2028.
	c.Deadline(at("2027-12-30 10:00"), 5)
	c.Deadline(at("2027-12-31 10:00"), 5)
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "year=2028") || !strings.Contains(out, "ra.calendar.overrides_file") {
		t.Errorf("no warning naming 2028 and the override key:\n%s", out)
	}
	if n := strings.Count(out, "year=2028"); n != 1 {
		t.Errorf("warned %d times about 2028, want once:\n%s", n, out)
	}
	if got := c.MissingYears(at("2027-12-20 10:00"), at("2029-01-02 00:00")); !slices.Equal(got, []int{2028, 2029}) {
		t.Errorf("MissingYears = %v, want [2028 2029]", got)
	}
	if got := c.CheckCoverage(at("2027-06-01 10:00"), 5); len(got) != 0 {
		t.Errorf("CheckCoverage in June 2027 = %v", got)
	}
	if got := c.CheckCoverage(at("2027-12-27 10:00"), 5); !slices.Equal(got, []int{2028}) {
		t.Errorf("CheckCoverage at the end of 2027 = %v, want [2028]", got)
	}
	// A calendar without statutory data (builtin none) has nothing to miss.
	logs.Reset()
	plain := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	plain.Deadline(at("2030-12-30 10:00"), 5)
	if got := plain.CheckCoverage(at("2030-12-30 10:00"), 5); len(got) != 0 || logs.Len() != 0 {
		t.Errorf("calendar without statutory data reported %v: %s", got, logs.String())
	}
}

func FuzzParseOverrides(f *testing.F) {
	for _, s := range []string{
		"2027-09-26,holiday,x\n2028-01-08,workday\n",
		"# c\n\n2027-01-01 , holiday\n",
		"2027-01-01,holiday\n2027-01-01,workday\n",
		"2027-02-30,holiday\n",
		"\"2027-01-01\",\"workday\",\"a,b\"\n",
		"2027-01-01",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ov, err := ParseOverrides(strings.NewReader(s))
		if err != nil {
			if !strings.Contains(err.Error(), "line ") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		seen := map[Date]bool{}
		for _, o := range ov {
			if seen[o.Date] {
				t.Fatalf("%s returned twice", o.Date)
			}
			seen[o.Date] = true
			if _, err := ParseDate(o.Date.String()); err != nil || o.Line < 1 {
				t.Fatalf("bad override %+v", o)
			}
		}
		c := New(Options{Overrides: ov})
		for _, o := range ov {
			if c.IsWorkingDay(o.Date) != o.Working {
				t.Fatalf("override %+v not applied", o)
			}
		}
	})
}

// china2026Holidays are the rest days of the 2026 statutory holidays
// (国办发明电〔2025〕7号): New Year 1-3 Jan, Spring Festival 15-23 Feb,
// Qingming 4-6 Apr, Labour Day 1-5 May, Dragon Boat 19-21 Jun, Mid-Autumn
// 25-27 Sep, National Day 1-7 Oct.
// They are the hand-written list the calendar used before lunar-go, kept
// to check the library's data against the notice.
func china2026Holidays() []Date {
	var out []Date
	add := func(m time.Month, from, to int) {
		for d := from; d <= to; d++ {
			out = append(out, Date{2026, m, d})
		}
	}
	add(time.January, 1, 3)
	add(time.February, 15, 23)
	add(time.April, 4, 6)
	add(time.May, 1, 5)
	add(time.June, 19, 21)
	add(time.September, 25, 27)
	add(time.October, 1, 7)
	return out
}

// china2026MakeupWorkdays are the weekend days worked in exchange in 2026.
// They are the hand-written list the calendar used before lunar-go, kept
// to check the library's data against the notice.
func china2026MakeupWorkdays() []Date {
	return []Date{
		{2026, time.January, 4},
		{2026, time.February, 14}, {2026, time.February, 28},
		{2026, time.May, 9},
		{2026, time.September, 20}, {2026, time.October, 10},
	}
}
