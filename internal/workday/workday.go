// Package workday is a working-day calendar: weekends are rest days,
// statutory holidays are rest days, and make-up working days (调休上班) are
// working days even on a weekend. It computes the deadlines of the service
// specification ("5 working days from receipt").
//
// The default calendar is China's statutory calendar for 2026 as announced by
// the State Council's General Office on 2025-11-04; operators add or replace
// dates through configuration when the next year's notice is published.
package workday

import (
	"fmt"
	"sort"
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

// China2026Holidays are the rest days of the 2026 statutory holidays
// (国办发明电〔2025〕7号): New Year 1-3 Jan, Spring Festival 15-23 Feb,
// Qingming 4-6 Apr, Labour Day 1-5 May, Dragon Boat 19-21 Jun, Mid-Autumn
// 25-27 Sep, National Day 1-7 Oct.
func China2026Holidays() []Date {
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

// China2026MakeupWorkdays are the weekend days worked in exchange in 2026.
func China2026MakeupWorkdays() []Date {
	return []Date{
		{2026, time.January, 4},
		{2026, time.February, 14}, {2026, time.February, 28},
		{2026, time.May, 9},
		{2026, time.September, 20}, {2026, time.October, 10},
	}
}

// chinaLocation is China Standard Time. China has no daylight saving time,
// so a fixed zone is exact and needs no tzdata on the host.
var chinaLocation = time.FixedZone("CST", 8*60*60)

// ChinaLocation returns UTC+8.
func ChinaLocation() *time.Location { return chinaLocation }

// Calendar answers whether a day is a working day. The zero value is not
// usable; build one with New. A Calendar is immutable and safe for
// concurrent use.
type Calendar struct {
	loc      *time.Location
	holidays map[Date]bool
	makeup   map[Date]bool
}

// Options configure a Calendar.
type Options struct {
	// Location decides which calendar day an instant falls on. Default UTC+8.
	Location *time.Location
	// Holidays are rest days even on a weekday.
	Holidays []Date
	// MakeupWorkdays are working days even on a weekend; a date in both lists
	// is a working day.
	MakeupWorkdays []Date
}

// New returns a calendar.
func New(o Options) *Calendar {
	if o.Location == nil {
		o.Location = chinaLocation
	}
	c := &Calendar{loc: o.Location, holidays: map[Date]bool{}, makeup: map[Date]bool{}}
	for _, d := range o.Holidays {
		c.holidays[d] = true
	}
	for _, d := range o.MakeupWorkdays {
		c.makeup[d] = true
	}
	return c
}

// Default is the Chinese statutory calendar of 2026 in UTC+8.
func Default() *Calendar {
	return New(Options{Holidays: China2026Holidays(), MakeupWorkdays: China2026MakeupWorkdays()})
}

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// IsWorkingDay reports whether d is a working day.
func (c *Calendar) IsWorkingDay(d Date) bool {
	if c.makeup[d] {
		return true
	}
	if c.holidays[d] {
		return false
	}
	wd := d.In(time.UTC).Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

// Deadline is the end of the n-th working day after the day on which t
// falls: a request received on any day, working or not, has until midnight
// after n further working days (received Friday, 1 working day → due at the
// end of Monday, or of the next working day if Monday is a holiday). n <= 0
// returns the end of t's own day.
func (c *Calendar) Deadline(t time.Time, n int) time.Time {
	d := DateOf(t.In(c.loc))
	for left := n; left > 0; {
		d = d.next()
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
		if c.IsWorkingDay(d) {
			n++
		}
	}
	return n
}

// Holidays lists the configured holidays in date order (for diagnostics).
func (c *Calendar) Holidays() []Date {
	out := make([]Date, 0, len(c.holidays))
	for d := range c.holidays {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].In(time.UTC).Before(out[j].In(time.UTC)) })
	return out
}
