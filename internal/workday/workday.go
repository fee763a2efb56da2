// Package workday is a working-day calendar: weekends are rest days,
// statutory holidays are rest days, and make-up working days (调休上班) are
// working days even on a weekend. It computes the deadlines of the service
// specification ("5 working days from receipt").
//
// The statutory data comes from github.com/6tail/lunar-go's HolidayUtil,
// which carries every State Council notice from 2002 on (China); an
// operator's override file sets the days it lacks or gets wrong. A deadline
// that reaches a year without data is computed with weekends only and
// reported in the log, since counting a Spring Festival as working days is
// the silent error this package exists to prevent.
package workday

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Date is a calendar day without a time zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q is not YYYY-MM-DD", s)
	}
	return DateOf(t), nil
}

// DateOf is the calendar day of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// In is the start of the day in loc.
func (d Date) In(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

func (d Date) next() Date { return DateOf(time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, time.UTC)) }

// chinaLocation is China Standard Time. China has no daylight saving time,
// so a fixed zone is exact and needs no tzdata on the host.
var chinaLocation = time.FixedZone("CST", 8*60*60)

// ChinaLocation returns UTC+8.
func ChinaLocation() *time.Location { return chinaLocation }

// Calendar answers whether a day is a working day. The zero value is not
// usable; build one with New. A Calendar does not change after New and is
// safe for concurrent use.
type Calendar struct {
	loc *time.Location
	// days holds every day that is not decided by the weekday alone:
	// false for a rest day, true for a working day.
	days map[Date]bool
	// years are the years whose holidays are known; nil when the calendar
	// has no statutory data, so that no year can be missing.
	years  map[int]bool
	known  string // years, for messages ("2002-2027, 2029")
	log    *slog.Logger
	warned *yearSet
}

type yearSet struct {
	mu sync.Mutex
	m  map[int]bool
}

// add reports whether y was not in the set yet.
func (s *yearSet) add(y int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[y] {
		return false
	}
	s.m[y] = true
	return true
}

// Statutory is a government's published rest days and make-up working days.
type Statutory struct {
	Holidays       []Date
	MakeupWorkdays []Date
	// Years are the years whose notice the data carries; a deadline in any
	// other year is reported.
	Years []int
}

// Override sets one day's kind, over the statutory data and the lists.
type Override struct {
	Date    Date
	Working bool
	Note    string
	// Line is where the override file says it (for messages).
	Line int
}

// Options configure a Calendar.
type Options struct {
	// Location decides which calendar day an instant falls on. Default UTC+8.
	Location *time.Location
	// Statutory is the base calendar (China for the State Council's);
	// nil means weekends only, and then no year counts as missing.
	Statutory *Statutory
	// Holidays are rest days even on a weekday.
	Holidays []Date
	// MakeupWorkdays are working days even on a weekend; a date in both lists
	// is a working day.
	MakeupWorkdays []Date
	// Overrides are applied last and win. A year with any override, holiday
	// or make-up day counts as known even when Statutory lacks it: the
	// operator has entered that year's notice.
	Overrides []Override
	// Logger receives the warning about a deadline in a year without data.
	// Default: discard.
	Logger *slog.Logger
}

// New returns a calendar.
func New(o Options) *Calendar {
	if o.Location == nil {
		o.Location = chinaLocation
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Calendar{loc: o.Location, days: map[Date]bool{}, log: o.Logger, warned: &yearSet{m: map[int]bool{}}}
	set := func(ds []Date, working, known bool) {
		for _, d := range ds {
			c.days[d] = working
			if known && c.years != nil {
				c.years[d.Year] = true
			}
		}
	}
	if st := o.Statutory; st != nil {
		// Only the notices' years count, not the year of a late-December
		// make-up day for the next New Year.
		c.years = map[int]bool{}
		for _, y := range st.Years {
			c.years[y] = true
		}
		set(st.Holidays, false, false)
		set(st.MakeupWorkdays, true, false)
	}
	set(o.Holidays, false, true)
	set(o.MakeupWorkdays, true, true)
	for _, ov := range o.Overrides {
		set([]Date{ov.Date}, ov.Working, true)
	}
	c.known = yearRanges(c.years)
	return c
}

// yearRanges writes a set of years as "2002-2027, 2029".
func yearRanges(years map[int]bool) string {
	ys := make([]int, 0, len(years))
	for y := range years {
		ys = append(ys, y)
	}
	slices.Sort(ys)
	var parts []string
	for i := 0; i < len(ys); {
		j := i
		for j+1 < len(ys) && ys[j+1] == ys[j]+1 {
			j++
		}
		p := strconv.Itoa(ys[i])
		if j > i {
			p += "-" + strconv.Itoa(ys[j])
		}
		parts = append(parts, p)
		i = j + 1
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Default is the Chinese statutory calendar (China) in UTC+8.
func Default() *Calendar {
	return New(Options{Statutory: China()})
}

// WithLogger returns the calendar reporting to log; the days are shared.
func (c *Calendar) WithLogger(log *slog.Logger) *Calendar {
	cc := *c
	cc.log = log
	cc.warned = &yearSet{m: map[int]bool{}}
	return &cc
}

// Covers reports whether the calendar knows year's holidays; true for every
// year when it has no statutory data to miss.
func (c *Calendar) Covers(year int) bool {
	return c.years == nil || c.years[year]
}

// KnownYears lists the years whose holidays the calendar knows, as
// "2002-2027, 2029"; "all" when it has no statutory data to miss.
func (c *Calendar) KnownYears() string {
	if c.years == nil {
		return "all"
	}
	return c.known
}

// MissingYears lists the years from from's day to to's day whose holidays
// the calendar does not know.
func (c *Calendar) MissingYears(from, to time.Time) []int {
	var out []int
	for y := DateOf(from.In(c.loc)).Year; y <= DateOf(to.In(c.loc)).Year; y++ {
		if !c.Covers(y) {
			out = append(out, y)
		}
	}
	return out
}

// CheckCoverage is the start-up check: it warns (once per year, like
// Deadline) about, and returns, the years without data that a deadline of
// n working days from t reaches.
func (c *Calendar) CheckCoverage(t time.Time, n int) []int {
	missing := c.MissingYears(t, c.deadline(t, n, false))
	for _, y := range missing {
		c.warn(y)
	}
	return missing
}

// note warns the first time a deadline reaches a year without data.
func (c *Calendar) note(y int) {
	if c.years != nil && !c.years[y] {
		c.warn(y)
	}
}

func (c *Calendar) warn(y int) {
	if c.warned.add(y) {
		c.log.Warn("working-day calendar has no statutory holidays for this year: its deadlines count only weekends as rest days; add the year's holidays and make-up days to ra.calendar.overrides_file, or update github.com/6tail/lunar-go",
			"year", y, "known_years", c.known)
	}
}

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// IsWorkingDay reports whether d is a working day.
func (c *Calendar) IsWorkingDay(d Date) bool {
	if w, ok := c.days[d]; ok {
		return w
	}
	wd := d.In(time.UTC).Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

// Deadline is the end of the n-th working day after the day on which t
// falls: a request received on any day, working or not, has until midnight
// after n further working days (received Friday, 1 working day → due at the
// end of Monday, or of the next working day if Monday is a holiday). n <= 0
// returns the end of t's own day. A deadline that runs through a year
// without data is logged as a warning, once per year.
func (c *Calendar) Deadline(t time.Time, n int) time.Time {
	return c.deadline(t, n, true)
}

func (c *Calendar) deadline(t time.Time, n int, warn bool) time.Time {
	d := DateOf(t.In(c.loc))
	for left := n; left > 0; {
		d = d.next()
		if warn {
			c.note(d.Year)
		}
		if c.IsWorkingDay(d) {
			left--
		}
	}
	return d.next().In(c.loc)
}

// WorkingDaysBetween counts the working days strictly after from's day up to
// and including to's day; 0 if to is not after from.
func (c *Calendar) WorkingDaysBetween(from, to time.Time) int {
	d, end := DateOf(from.In(c.loc)), DateOf(to.In(c.loc))
	n := 0
	for guard := 0; d.In(time.UTC).Before(end.In(time.UTC)) && guard < 100000; guard++ {
		d = d.next()
		c.note(d.Year)
		if c.IsWorkingDay(d) {
			n++
		}
	}
	return n
}

// Holidays lists the days the calendar makes rest days (statutory and
// configured holidays, overrides), in date order (for diagnostics).
func (c *Calendar) Holidays() []Date {
	out := make([]Date, 0, len(c.days))
	for d, working := range c.days {
		if !working {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].In(time.UTC).Before(out[j].In(time.UTC)) })
	return out
}
