package webhook

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// SlackOptions are the optional overrides of a legacy incoming webhook;
// webhooks of Slack apps ignore them (the app chose the channel).
type SlackOptions struct {
	Channel   string
	Username  string
	IconEmoji string
	IconURL   string
	// Title, when set, replaces the header line; TitleLink adds a link to
	// it. Text, when set, replaces the summary. Both are plain text (they
	// are escaped), rendered by the caller (slack_configs' templates).
	Title, TitleLink, Text string
}

// Slack limits this builder keeps to (Block Kit reference).
const (
	slackHeaderMax  = 150  // plain_text of a header block
	slackTextMax    = 3000 // text of a section block
	slackFieldMax   = 2000 // one field of a section block
	slackFieldCount = 10   // fields of a section block
	slackListMax    = 5    // root causes and changes listed
)

// Slack builds the JSON of a Slack incoming webhook: "text" (the one-line
// fallback shown in notifications) and Block Kit "blocks": a header, a
// section of fields (status, the incident it was merged into, severity,
// service, team, owner, assignee, times), the root causes and changes, the
// links, and a context line with the incident id. The fallback text of a
// merged incident ends with "merged into <id>". Text is escaped for mrkdwn
// (&, <, >) and cut to Slack's limits.
func Slack(in Incident, opts SlackOptions) ([]byte, error) {
	if err := in.Validate(); err != nil {
		return nil, errs.Permanent(err)
	}
	sev := in.severity()
	headline := fmt.Sprintf("%s [%s] %s", slackEmoji(in.Status), strings.ToUpper(string(in.Transition)), in.Title)
	if opts.Title != "" {
		headline = opts.Title
	}
	summary := in.Summary
	if opts.Text != "" {
		summary = opts.Text
	}

	var fields []slackText
	field := func(name, value string) {
		if value != "" && len(fields) < slackFieldCount {
			fields = append(fields, mrkdwn(cut("*"+name+"*\n"+value, slackFieldMax)))
		}
	}
	field("Status", slackEscape(string(in.Status)))
	if in.MergedInto != "" {
		field("Merged into", "`"+slackEscape(in.MergedInto)+"`")
	}
	field("Severity", slackEscape(string(sev)))
	field("Service", slackEscape(in.Service))
	field("Team", slackEscape(in.Team))
	field("Owner", slackEscape(in.Owner))
	field("Assignee", slackEscape(in.Assignee))
	field("Opened", slackTime(in.OpenedAt))
	field("Acknowledged", slackBy(slackTime(in.AcknowledgedAt), in.AcknowledgedBy))
	field("Resolved", slackBy(slackTime(in.ResolvedAt), in.ResolvedBy))

	blocks := []slackBlock{{Type: "header", Text: &slackText{Type: "plain_text", Text: cut(headline, slackHeaderMax), Emoji: true}}}
	if opts.TitleLink != "" {
		blocks = append(blocks, slackBlock{Type: "section", Text: ptr(mrkdwn(slackLink(opts.TitleLink, cut(headline, slackHeaderMax))))})
	}
	if summary != "" {
		blocks = append(blocks, slackBlock{Type: "section", Text: ptr(mrkdwn(cut(slackEscape(summary), slackTextMax)))})
	}
	blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	if len(in.RootCauses) > 0 {
		var b strings.Builder
		b.WriteString("*Root causes*")
		for i, rc := range in.RootCauses {
			if i == slackListMax {
				fmt.Fprintf(&b, "\n_and %d more_", len(in.RootCauses)-i)
				break
			}
			fmt.Fprintf(&b, "\n• *%s* (%s)", slackEscape(rc.Service), strconv.FormatFloat(rc.Score, 'f', 2, 64))
			if len(rc.Reasons) > 0 {
				b.WriteString(": " + slackEscape(strings.Join(rc.Reasons, "; ")))
			}
		}
		blocks = append(blocks, slackBlock{Type: "section", Text: ptr(mrkdwn(cut(b.String(), slackTextMax)))})
	}
	if len(in.Changes) > 0 {
		var b strings.Builder
		b.WriteString("*Changes*")
		for i, c := range in.Changes {
			if i == slackListMax {
				fmt.Fprintf(&b, "\n_and %d more_", len(in.Changes)-i)
				break
			}
			what := strings.TrimSpace(strings.Join([]string{c.Type, c.Service, c.Version}, " "))
			if c.URL != "" {
				what = slackLink(c.URL, what)
			} else {
				what = slackEscape(what)
			}
			fmt.Fprintf(&b, "\n• %s", what)
			if c.Author != "" {
				b.WriteString(" by " + slackEscape(c.Author))
			}
			if !c.Time.IsZero() {
				b.WriteString(" at " + slackTime(c.Time))
			}
		}
		blocks = append(blocks, slackBlock{Type: "section", Text: ptr(mrkdwn(cut(b.String(), slackTextMax)))})
	}
	var links []string
	if in.URL != "" {
		links = append(links, slackLink(in.URL, "Open incident"))
	}
	if in.Runbook != "" {
		links = append(links, slackLink(in.Runbook, "Runbook"))
	}
	if len(links) > 0 {
		blocks = append(blocks, slackBlock{Type: "section", Text: ptr(mrkdwn(strings.Join(links, "  ·  ")))})
	}
	ctx := fmt.Sprintf("incident `%s` · %d members", slackEscape(in.ID), in.memberCount())
	if len(in.Services) > 0 {
		ctx += " · " + slackEscape(strings.Join(in.Services, ", "))
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{mrkdwn(cut(ctx, slackTextMax))}})

	text := headline
	if in.Service != "" || sev != "" {
		text += " (" + strings.Trim(in.Service+", "+string(sev), ", ") + ")"
	}
	if in.MergedInto != "" {
		text += ", merged into " + in.MergedInto
	}
	b, err := marshal(slackMessage{
		Text: cut(slackEscape(text), slackTextMax), Blocks: blocks,
		Channel: opts.Channel, Username: opts.Username, IconEmoji: opts.IconEmoji, IconURL: opts.IconURL,
	})
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("webhook: slack payload of incident %s: %w", in.ID, err))
	}
	return b, nil
}

type slackMessage struct {
	Text      string       `json:"text"`
	Blocks    []slackBlock `json:"blocks"`
	Channel   string       `json:"channel,omitempty"`
	Username  string       `json:"username,omitempty"`
	IconEmoji string       `json:"icon_emoji,omitempty"`
	IconURL   string       `json:"icon_url,omitempty"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

func mrkdwn(s string) slackText { return slackText{Type: "mrkdwn", Text: s} }

func ptr[T any](v T) *T { return &v }

func slackEmoji(s Status) string {
	switch s {
	case StatusResolved:
		return "✅"
	case StatusAcknowledged:
		return "👀"
	}
	return "🚨"
}

// slackEscape escapes the three characters mrkdwn gives a meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackLink is <url|text>, with "|" and ">" kept out of the URL.
func slackLink(url, text string) string {
	url = strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C").Replace(url)
	return "<" + url + "|" + slackEscape(text) + ">"
}

// slackTime renders t in the reader's time zone with a UTC fallback.
func slackTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", t.Unix(), t.Format("2006-01-02 15:04:05 UTC"))
}

// cut shortens s to at most n runes, marking the cut with "…".
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// slackBy adds who did it to when it was done (none without a time).
func slackBy(at, who string) string {
	if at == "" || who == "" {
		return at
	}
	return at + " by " + slackEscape(who)
}
