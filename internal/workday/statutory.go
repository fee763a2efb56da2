package workday

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/6tail/lunar-go/HolidayUtil"
)

// lunar-go's data starts at the end of 2001 and runs without a gap to the
// newest notice; the probe starts before it and stops at the first year
// without entries after it, so a newer module version's years are picked up
// without a change here (and the probe costs tens of look-ups, not hundreds).
const (
	probeFirstYear = 1990
	probeLastYear  = 2199
)

// China is the State Council's statutory holidays and make-up working days
// as github.com/6tail/lunar-go's HolidayUtil carries them: every notice from
// 2002 to the newest in the module version go.mod names (2027 in v1.4.7).
// A year counts as covered when the data has its notice, which is the
// notice's target year: 2001-12-29, a make-up day for New Year 2002, does
// not make 2001 covered.
func China() *Statutory {
	s := &Statutory{}
	years := map[int]bool{}
	for y := probeFirstYear; y <= probeLastYear; y++ {
		l := HolidayUtil.GetHolidaysByYear(y)
		if l.Len() == 0 && len(years) > 0 {
			break
		}
		for e := l.Front(); e != nil; e = e.Next() {
			h, ok := e.Value.(*HolidayUtil.Holiday)
			if !ok {
				continue
			}
			d, err := ParseDate(h.GetDay())
			if err != nil {
				continue
			}
			if target, err := ParseDate(h.GetTarget()); err == nil {
				years[target.Year] = true
			}
			if h.IsWork() {
				s.MakeupWorkdays = append(s.MakeupWorkdays, d)
			} else {
				s.Holidays = append(s.Holidays, d)
			}
		}
	}
	for y := range years {
		s.Years = append(s.Years, y)
	}
	return s
}

// maxOverridesBytes bounds an override file: a few lines a year.
const maxOverridesBytes = 1 << 20

// ReadOverrides reads an override file (see ParseOverrides); errors name the
// file and the line.
func ReadOverrides(path string) ([]Override, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading calendar overrides: %w", err)
	}
	defer f.Close()
	ov, err := ParseOverrides(f)
	if err != nil {
		return nil, fmt.Errorf("%s %w", path, err)
	}
	return ov, nil
}

// ParseOverrides reads an override file: CSV lines "YYYY-MM-DD,kind[,note]"
// where kind is holiday (a rest day, even on a weekday) or workday (a
// working day, even on a weekend); blank lines and lines starting with #
// are skipped. A date may appear once. Errors start with "line N:".
func ParseOverrides(r io.Reader) ([]Override, error) {
	lr := &limitedReader{r: r, left: maxOverridesBytes}
	cr := csv.NewReader(lr)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	var out []Override
	seen := map[Date]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: %w", pe.StartLine, pe.Err)
			}
			return nil, fmt.Errorf("line %d: %w", lr.lines+1, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < 2 || len(rec) > 3 {
			return nil, fmt.Errorf("line %d: want date,kind[,note], got %d fields", line, len(rec))
		}
		ds := strings.TrimSpace(rec[0])
		d, err := ParseDate(ds)
		if err != nil || d.String() != ds {
			return nil, fmt.Errorf("line %d: %q is not a YYYY-MM-DD date", line, ds)
		}
		o := Override{Date: d, Line: line}
		switch kind := strings.TrimSpace(rec[1]); kind {
		case "holiday":
		case "workday":
			o.Working = true
		default:
			return nil, fmt.Errorf("line %d: kind %q is not holiday or workday", line, kind)
		}
		if len(rec) == 3 {
			o.Note = strings.TrimSpace(rec[2])
		}
		if prev, ok := seen[d]; ok {
			return nil, fmt.Errorf("line %d: %s is already set on line %d", line, d, prev)
		}
		seen[d] = line
		out = append(out, o)
	}
}

var errTooLarge = fmt.Errorf("override file is over %d bytes", maxOverridesBytes)

// limitedReader fails, instead of ending quietly, past its limit: a
// truncated override file must not pass for a complete one.
type limitedReader struct {
	r     io.Reader
	left  int64
	lines int // newlines read so far, for the message of a read error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.lines += bytes.Count(p[:n], []byte{'\n'})
	return n, err
}
