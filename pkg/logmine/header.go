package logmine

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// HeaderKind names a common log header layout that DetectHeader can
// recognise without a configured Format.
type HeaderKind string

// The header kinds, in the order DetectHeader prefers them on a tie (the
// stricter first: a JSON or syslog line is never taken for logfmt).
const (
	HeaderNone    HeaderKind = "none"    // no known header: whole lines are mined
	HeaderJSON    HeaderKind = "json"    // JSON lines: {"time":..,"level":..,"msg":..}
	HeaderRFC5424 HeaderKind = "rfc5424" // <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG
	HeaderRFC3164 HeaderKind = "rfc3164" // [<PRI>]Mmm dd hh:mm:ss HOST TAG[PID]: MSG
	HeaderKlog    HeaderKind = "klog"    // Kubernetes: Lmmdd hh:mm:ss.uuuuuu PID file:line] MSG
	HeaderAccess  HeaderKind = "access"  // Apache/nginx common and combined access logs
	HeaderLog4j   HeaderKind = "log4j"   // date time LEVEL [thread] logger - MSG (Log4j, Logback)
	HeaderLogfmt  HeaderKind = "logfmt"  // key=value pairs with a msg, level or time key
)

// HeaderKinds lists the kinds DetectHeader tries, in preference order.
func HeaderKinds() []HeaderKind {
	return []HeaderKind{HeaderJSON, HeaderRFC5424, HeaderRFC3164, HeaderKlog, HeaderAccess, HeaderLog4j, HeaderLogfmt}
}

// Header is what a header kind found in one line. Content is the message
// that mining works on; Level is the line's severity as written ("" when
// the header has none).
type Header struct {
	Kind    HeaderKind
	Time    string
	Level   string
	Source  string // host, logger, program or file, as the kind has it
	Content string
}

var (
	reRFC5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: ((?s:.*)))?$`)
	reRFC3164 = regexp.MustCompile(`^(?:<(\d{1,3})>)?([A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}) (\S+) ([^\s:\[]+)(?:\[(\d+)\])?: ?((?s:.*))$`)
	reKlog    = regexp.MustCompile(`^([IWEF])(\d{4} \d{2}:\d{2}:\d{2}\.\d{6})\s+(\d+) ([^\s:\]]+:\d+)\] ?((?s:.*))$`)
	reAccess  = regexp.MustCompile(`^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"\\]*(?:\\.[^"\\]*)*)" (\d{3}) (\d+|-)(?: "[^"]*" "[^"]*")?.*$`)
	// Log4j's and Logback's layouts put the level before or after the
	// thread: "2024-01-02 10:00:00,123 INFO [main] a.b.C - msg" and
	// "2024-01-02 10:00:00.123 [main] INFO a.b.C - msg".
	reLog4jLevelFirst  = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|SEVERE)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+-\s((?s:.*))$`)
	reLog4jThreadFirst = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+\[([^\]]*)\]\s+(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|SEVERE)\s+(\S+)\s+-\s((?s:.*))$`)
)

// syslogSeverity is RFC 5424's severity of a PRI value, as a level word.
func syslogSeverity(pri string) string {
	p, err := strconv.Atoi(pri)
	if err != nil || p > 191 {
		return ""
	}
	return [...]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}[p%8]
}

var klogLevels = map[byte]string{'I': "info", 'W': "warning", 'E': "error", 'F': "fatal"}

// SplitHeader splits line by the header kind. ok is false when the line
// does not have that header (HeaderNone takes every line whole).
func SplitHeader(kind HeaderKind, line string) (h Header, ok bool) {
	h.Kind = kind
	switch kind {
	case HeaderNone:
		h.Content = line
		return h, true
	case HeaderJSON:
		return splitJSON(line)
	case HeaderRFC5424:
		m := reRFC5424.FindStringSubmatch(line)
		if m == nil {
			return h, false
		}
		h.Level, h.Time, h.Source, h.Content = syslogSeverity(m[1]), m[2], m[4], strings.TrimPrefix(m[8], "\ufeff")
		return h, true
	case HeaderRFC3164:
		m := reRFC3164.FindStringSubmatch(line)
		if m == nil {
			return h, false
		}
		if m[1] != "" {
			h.Level = syslogSeverity(m[1])
		}
		h.Time, h.Source, h.Content = m[2], m[4], m[6]
		return h, true
	case HeaderKlog:
		m := reKlog.FindStringSubmatch(line)
		if m == nil {
			return h, false
		}
		h.Level, h.Time, h.Source, h.Content = klogLevels[m[1][0]], m[2], m[4], m[5]
		return h, true
	case HeaderAccess:
		m := reAccess.FindStringSubmatch(line)
		if m == nil {
			return h, false
		}
		// the message of an access log is its request and status; the
		// client, user, time and size are the header
		h.Time, h.Source, h.Content = m[4], m[1], m[5]+" "+m[6]
		if m[6][0] == '5' {
			h.Level = "error"
		} else if m[6][0] == '4' {
			h.Level = "warning"
		} else {
			h.Level = "info"
		}
		return h, true
	case HeaderLog4j:
		if m := reLog4jLevelFirst.FindStringSubmatch(line); m != nil {
			h.Time, h.Level, h.Source, h.Content = m[1], strings.ToLower(m[2]), m[4], m[5]
			return h, true
		}
		if m := reLog4jThreadFirst.FindStringSubmatch(line); m != nil {
			h.Time, h.Level, h.Source, h.Content = m[1], strings.ToLower(m[3]), m[4], m[5]
			return h, true
		}
		return h, false
	case HeaderLogfmt:
		return splitLogfmt(line)
	}
	return h, false
}

// The keys JSON and logfmt loggers write the message, level and time
// under (zap, zerolog, logrus, slog, bunyan, Docker, journald exports).
var (
	messageKeys = []string{"msg", "message", "MESSAGE", "log", "Message", "text"}
	levelKeys   = []string{"level", "lvl", "severity", "loglevel", "Level", "PRIORITY"}
	timeKeys    = []string{"time", "ts", "timestamp", "@timestamp", "t", "Time"}
)

func splitJSON(line string) (Header, bool) {
	h := Header{Kind: HeaderJSON}
	s := strings.TrimSpace(line)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return h, false
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(s), &obj); err != nil {
		return h, false
	}
	str := func(keys []string) string {
		for _, k := range keys {
			switch v := obj[k].(type) {
			case string:
				return v
			case float64:
				return strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		return ""
	}
	h.Content = str(messageKeys)
	h.Level = strings.ToLower(str(levelKeys))
	h.Time = str(timeKeys)
	if h.Content == "" {
		// no message field: the object is the message
		h.Content = s
	}
	return h, true
}

// splitLogfmt takes a line of key=value pairs (values bare or quoted) that
// has a message, level or time key; the message is msg= (or message=),
// else the pairs other than time and level.
func splitLogfmt(line string) (Header, bool) {
	h := Header{Kind: HeaderLogfmt}
	pairs, known := 0, false
	var rest strings.Builder
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i == len(line) {
			break
		}
		ks := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' && line[i] != '"' {
			i++
		}
		if i == ks || i == len(line) || line[i] != '=' {
			return h, false
		}
		key := line[ks:i]
		i++
		var val string
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				return h, false
			}
			raw := line[i : j+1]
			if u, err := strconv.Unquote(raw); err == nil && utf8.ValidString(u) {
				val = u
			} else {
				val = raw[1 : len(raw)-1]
			}
			i = j + 1
		} else {
			vs := i
			for i < len(line) && line[i] != ' ' {
				i++
			}
			val = line[vs:i]
		}
		pairs++
		switch {
		case key == "msg" || key == "message":
			h.Content, known = val, true
			continue
		case key == "level" || key == "lvl" || key == "severity":
			h.Level, known = strings.ToLower(val), true
			continue
		case key == "time" || key == "ts" || key == "t" || key == "timestamp":
			h.Time, known = val, true
			continue
		}
		if rest.Len() > 0 {
			rest.WriteByte(' ')
		}
		rest.WriteString(line[ks:i])
	}
	if pairs < 2 || !known {
		return h, false
	}
	if h.Content == "" {
		h.Content = rest.String()
	} else if rest.Len() > 0 {
		// the other fields belong to the message's template (their
		// values are masked as key=<*>)
		h.Content += " " + rest.String()
	}
	return h, true
}

// Detection is what DetectHeader chose and why.
type Detection struct {
	Kind    HeaderKind
	Matched int // sampled lines the kind splits
	Sampled int // non-empty lines looked at
}

// DetectHeader picks the header kind that splits the most of the sample
// lines (empty ones skipped), if it splits at least half of them;
// otherwise HeaderNone. Ties go to the earlier kind of HeaderKinds. Callers
// pass a bounded sample (the first lines of a file or of a source).
func DetectHeader(sample []string) Detection {
	best := Detection{Kind: HeaderNone}
	n := 0
	for _, l := range sample {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	best.Sampled = n
	if n == 0 {
		return best
	}
	for _, k := range HeaderKinds() {
		c := 0
		for _, l := range sample {
			if strings.TrimSpace(l) == "" {
				continue
			}
			if _, ok := SplitHeader(k, l); ok {
				c++
			}
		}
		if c > best.Matched && 2*c >= n {
			best.Kind, best.Matched = k, c
		}
	}
	return best
}
