package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// ErrInvalidIdentifier is wrapped by every error about a table or column name
// that is not a plain identifier.
var ErrInvalidIdentifier = errors.New("invalid identifier")

const maxIdentifierLen = 128

// validName reports whether s is [A-Za-z_][A-Za-z0-9_]* of bounded length:
// the only names this package ever puts into SQL, so no quoting trick or
// comment can ride in on a table or column name.
func validName(s string) bool {
	if s == "" || len(s) > maxIdentifierLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// QuoteTable validates a table name, "table" or "database.table", and returns
// it quoted for SQL.
func QuoteTable(name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", errs.Permanent(fmt.Errorf("%w: table %q: at most one dot (database.table)", ErrInvalidIdentifier, name))
	}
	for _, p := range parts {
		if !validName(p) {
			return "", errs.Permanent(fmt.Errorf("%w: table %q: each part must match [A-Za-z_][A-Za-z0-9_]* (at most %d characters)", ErrInvalidIdentifier, name, maxIdentifierLen))
		}
	}
	return "`" + strings.Join(parts, "`.`") + "`", nil
}

// QuoteColumn validates a column name, "name" or a Nested sub-column
// "name.sub" (like labels.key), and returns it quoted for SQL.
func QuoteColumn(name string) (string, error) {
	parts := strings.Split(name, ".")
	ok := len(parts) <= 2
	for _, p := range parts {
		ok = ok && validName(p)
	}
	if !ok {
		return "", errs.Permanent(fmt.Errorf("%w: column %q: must be name or name.sub, each matching [A-Za-z_][A-Za-z0-9_]*", ErrInvalidIdentifier, name))
	}
	// A Nested sub-column is one identifier whose name contains the dot.
	return "`" + name + "`", nil
}

// splitTable returns the database part ("" for the current database) and
// the table part of a validated name.
func splitTable(name string) (database, table string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}
