package log

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// timeLayout is RFC 3339 with exactly three fractional digits. Times are
// converted to UTC first, so the zone is always "Z".
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// missing is the value of a key that has none.
const missing = "!MISSING"

type level uint8

const (
	levelInfo level = iota
	levelWarn
	levelError
)

func (lv level) String() string {
	switch lv {
	case levelWarn:
		return "warn"
	case levelError:
		return "error"
	}
	return "info"
}

type kind uint8

const (
	kindString kind = iota
	kindInt
	kindUint
	kindBool
	kindFloat // s holds the number's text; NaN and infinities are kindString
	kindNull
	kindInts
	kindStrings
)

// A field is one key and its value, reduced to the few kinds that both
// formats know how to write. Encoding from this one form is what keeps the
// formats carrying the same fields in the same order.
type field struct {
	key  string
	kind kind
	s    string
	i    int64
	u    uint64
	b    bool
	ints []int
	strs []string
}

// appendFields appends the fields of kv to fs. With copy set, slices are
// copied, because fields kept by With outlive the call.
func appendFields(fs []field, kv []any, copySlices bool) []field {
	for i := 0; i < len(kv); i += 2 {
		var v any = missing
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		f := makeField(kv[i], v)
		if copySlices {
			f.ints = append([]int(nil), f.ints...)
			f.strs = append([]string(nil), f.strs...)
		}
		fs = append(fs, f)
	}
	return fs
}

func makeField(k, v any) field {
	key, ok := k.(string)
	if !ok {
		key = fmt.Sprint(k)
	}
	f := field{key: sanitizeKey(key)}

	switch v := v.(type) {
	case nil:
		f.kind = kindNull
	case string:
		f.s = v
	case int:
		f.kind, f.i = kindInt, int64(v)
	case int8:
		f.kind, f.i = kindInt, int64(v)
	case int16:
		f.kind, f.i = kindInt, int64(v)
	case int32:
		f.kind, f.i = kindInt, int64(v)
	case int64:
		f.kind, f.i = kindInt, v
	case uint:
		f.kind, f.u = kindUint, uint64(v)
	case uint8:
		f.kind, f.u = kindUint, uint64(v)
	case uint16:
		f.kind, f.u = kindUint, uint64(v)
	case uint32:
		f.kind, f.u = kindUint, uint64(v)
	case uint64:
		f.kind, f.u = kindUint, v
	case uintptr:
		f.kind, f.u = kindUint, uint64(v)
	case bool:
		f.kind, f.b = kindBool, v
	case float64:
		f.s = formatFloat(v)
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			f.kind = kindFloat
		}
	case time.Time:
		f.s = v.UTC().Format(timeLayout)
	case time.Duration:
		f.s = v.String()
	case []int:
		f.kind, f.ints = kindInts, v
	case []string:
		f.kind, f.strs = kindStrings, v
	default:
		// fmt.Sprint prefers Error to String, so an error gives its
		// message, and it recovers from a method that panics on a nil
		// receiver.
		f.s = fmt.Sprint(v)
	}
	return f
}

// sanitizeKey maps key to a non-empty string of [A-Za-z0-9_.-], replacing
// each other character (or byte of invalid UTF-8) by "_". It also renames
// the keys that every JSON line already has.
func sanitizeKey(key string) string {
	switch key {
	case "":
		return "_"
	case "time", "level", "event":
		return "_" + key
	}
	if keyIsClean(key) {
		return key
	}

	var b strings.Builder
	for _, r := range key {
		if r < utf8.RuneSelf && keyByte(byte(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return sanitizeKey(b.String())
}

func keyIsClean(key string) bool {
	for i := 0; i < len(key); i++ {
		if !keyByte(key[i]) {
			return false
		}
	}
	return true
}

func keyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '-'
}

// formatFloat writes f as ECMAScript and encoding/json do: plain decimal
// digits, with an exponent only for very small or very large magnitudes.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}

	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, 64)
	if format == 'e' {
		// 1e-07 reads better as 1e-7.
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
	}
	return s
}

var bufferPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	// Keep the pool from pinning the buffer of one huge event.
	if cap(*b) <= 64<<10 {
		bufferPool.Put(b)
	}
}

// appendLogfmt appends one complete logfmt line, "\n" included.
func appendLogfmt(dst []byte, t time.Time, lv level, name string,
	fields []field, kv []any) []byte {
	dst = t.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, ' ')
	dst = append(dst, sanitizeKey(name)...)
	if lv != levelInfo {
		dst = append(dst, ` level="`...)
		dst = append(dst, lv.String()...)
		dst = append(dst, '"')
	}

	for i := range fields {
		dst = appendLogfmtField(dst, &fields[i])
	}
	for i := 0; i < len(kv); i += 2 {
		var v any = missing
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		f := makeField(kv[i], v)
		dst = appendLogfmtField(dst, &f)
	}
	return append(dst, '\n')
}

func appendLogfmtField(dst []byte, f *field) []byte {
	dst = append(dst, ' ')
	dst = append(dst, f.key...)
	dst = append(dst, '=')

	switch f.kind {
	case kindInt:
		return strconv.AppendInt(dst, f.i, 10)
	case kindUint:
		return strconv.AppendUint(dst, f.u, 10)
	case kindBool:
		return strconv.AppendBool(dst, f.b)
	case kindFloat:
		return append(dst, f.s...)
	case kindNull:
		return append(dst, "null"...)
	case kindInts:
		var b []byte
		for i, n := range f.ints {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		return appendQuoted(dst, string(b))
	case kindStrings:
		return appendQuoted(dst, strings.Join(f.strs, ","))
	}
	return appendQuoted(dst, f.s)
}

// appendQuoted appends s as a double-quoted string with Go escapes, as
// strconv.Quote does, limited to the escapes that JSON also has, so that the
// result is both a Go string literal (strconv.Unquote gives s back) and a
// logfmt value that common logfmt parsers read back. For text without
// control characters the result is exactly strconv.Quote's. It differs in
// three places, each where Go and JSON (and so logfmt parsers, which take
// JSON's escapes) have no escape in common:
//
//   - \a, \v and other control characters are written \u00XX, not \a, \v or
//     \xXX;
//   - a byte of invalid UTF-8 is written \ufffd (the replacement
//     character, which is also what zerolog writes), not \xXX;
//   - a non-printable character beyond U+FFFF is written as itself, since
//     Go's \U escape is unknown to JSON and JSON's surrogate pairs to Go.
//
// No raw control character, and so no newline, can appear in the result.
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"

	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= ' ' && c < utf8.RuneSelf && c != '"' && c != '\\' && c != 0x7f {
			dst = append(dst, c)
			i++
			continue
		}

		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\b':
			dst = append(dst, `\b`...)
		case r == '\f':
			dst = append(dst, `\f`...)
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\r':
			dst = append(dst, `\r`...)
		case r == '\t':
			dst = append(dst, `\t`...)
		case strconv.IsPrint(r) || r > 0xffff:
			dst = utf8.AppendRune(dst, r)
		default:
			dst = append(dst, '\\', 'u',
				hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		}
	}
	return append(dst, '"')
}

// writeJSON builds the event with zerolog, which hands the finished line to
// l.out in one Write call.
func (l *Logger) writeJSON(t time.Time, lv level, name string, kv []any) {
	var ts [len(timeLayout) + 8]byte
	e := l.zl.Log().
		Bytes("time", t.UTC().AppendFormat(ts[:0], timeLayout)).
		Str("level", lv.String()).
		Str("event", sanitizeKey(name))
	if e == nil {
		// zerolog.SetGlobalLevel(zerolog.Disabled); see the package doc.
		return
	}

	for i := range l.fields {
		addJSONField(e, &l.fields[i])
	}
	for i := 0; i < len(kv); i += 2 {
		var v any = missing
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		f := makeField(kv[i], v)
		addJSONField(e, &f)
	}
	e.Send()
}

func addJSONField(e *zerolog.Event, f *field) {
	switch f.kind {
	case kindInt:
		e.Int64(f.key, f.i)
	case kindUint:
		e.Uint64(f.key, f.u)
	case kindBool:
		e.Bool(f.key, f.b)
	case kindFloat:
		e.RawJSON(f.key, []byte(f.s))
	case kindNull:
		e.RawJSON(f.key, jsonNull)
	case kindInts:
		e.Ints(f.key, f.ints)
	case kindStrings:
		e.Strs(f.key, f.strs)
	default:
		e.Str(f.key, f.s)
	}
}

var jsonNull = []byte("null")
