package desk

import (
	"time"

	"github.com/certcenter/certcenter/internal/workday"
)

// Calendar names.
const (
	Cal5x8  = "5x8"
	Cal7x24 = "7x24"
)

// businessClock measures time that counts on a service calendar: every
// instant for 7x24, office hours of working days for 5x8.
type businessClock interface {
	// Add is the instant at which d of business time has passed since t.
	Add(t time.Time, d time.Duration) time.Time
	// Between is the business time from a to b; 0 if b is not after a.
	Between(a, b time.Time) time.Duration
}

type allHours struct{}

func (allHours) Add(t time.Time, d time.Duration) time.Time { return t.Add(d) }
func (allHours) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	return b.Sub(a)
}

// officeHours counts [start, end) of each working day of cal, in cal's time
// zone.
type officeHours struct {
	cal        *workday.Calendar
	start, end time.Duration
}

// maxDays bounds the day walks: a target of months on a calendar without
// working days must not loop for ever.
const maxDays = 3660

// window is the office hours of the day holding t (zero if it is no
// working day).
func (o officeHours) window(day time.Time) (time.Time, time.Time, bool) {
	if !o.cal.IsWorkingDay(workday.DateOf(day)) {
		return time.Time{}, time.Time{}, false
	}
	return day.Add(o.start), day.Add(o.end), true
}

func startOfDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

func (o officeHours) Add(t time.Time, d time.Duration) time.Time {
	loc := o.cal.Location()
	day := startOfDay(t, loc)
	for i := 0; i < maxDays; i++ {
		if ws, we, ok := o.window(day); ok {
			from := ws
			if t.After(from) {
				from = t
			}
			if from.Before(we) {
				if left := we.Sub(from); d <= left {
					return from.Add(d)
				} else {
					d -= left
				}
			}
		}
		day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
	}
	return day
}

func (o officeHours) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	loc := o.cal.Location()
	var sum time.Duration
	day := startOfDay(a, loc)
	for i := 0; i < maxDays && day.Before(b); i++ {
		if ws, we, ok := o.window(day); ok {
			from, to := ws, we
			if a.After(from) {
				from = a
			}
			if b.Before(to) {
				to = b
			}
			if to.After(from) {
				sum += to.Sub(from)
			}
		}
		day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
	}
	return sum
}
