// Package config loads a service's configuration struct from, in increasing
// precedence: the defaults already in the struct, a YAML file, environment
// variables and -set flags, then validates it.
//
// The same struct tags serve every source, so a key has one name everywhere:
// bus.urls in the file, AIOPS_BUS__URLS in the environment (keys joined by
// "__" because keys themselves contain "_"), -set bus.urls=... on the command
// line. A variable's name carries no case: it matches field names ignoring
// case, and map keys as mapKey says (AIOPS_RECEIVERS__OPS__URL sets the
// entry the file spells "Ops"). Every source is strict: a key that the
// struct does not have is an error naming the key and where it came from
// (file:line, variable, flag), so a typo never silently leaves a default in
// place.
//
// Secrets never belong in the YAML file. A field tagged `yaml:"-" env:"name"`
// can be set only from the environment (PREFIX_..._NAME), and Secret reads a
// secret from a file or a variable; error messages never contain values.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// ErrInvalidConfig is wrapped by every error Load returns, so a main can map
// any configuration problem to its usage exit code with errors.Is.
var ErrInvalidConfig = errors.New("invalid configuration")

// ErrUnknownKey is wrapped when a file key, environment variable or -set flag
// names a key the configuration struct does not have.
var ErrUnknownKey = errors.New("unknown key")

// MaxFileSize bounds the configuration file: configuration is small, and a
// bound keeps a wrong path (a log file, a device) from exhausting memory.
const MaxFileSize = 4 << 20

// Validator is implemented by configuration structs that check themselves.
// Load calls it after all sources have been applied.
type Validator interface {
	Validate() error
}

// Options says where Load reads from.
type Options struct {
	// File is the YAML file to read; empty means none.
	File string
	// EnvPrefix selects the environment variables to apply: PREFIX_A__B sets
	// key a.b. Empty disables the environment source.
	EnvPrefix string
	// Environ is the environment as KEY=VALUE strings; nil means os.Environ().
	// Tests inject it.
	Environ []string
	// EnvIgnore lists the variables that share EnvPrefix but are not
	// configuration, so strict checking does not reject them: an entry
	// ending in "_" is a name prefix ("AIOPS_TEST_" for test fixtures);
	// any other names a variable and its family ("AIOPS_EXP": AIOPS_EXP
	// and AIOPS_EXP_*, not AIOPS_EXPORT, which may be a typo to report).
	EnvIgnore []string
	// Sets are key.path=value assignments, applied last, in order.
	Sets []string
	// FileKinds tells files of another kind from a configuration: by a
	// top-level key the configuration does not have but such a file does
	// ("detect" of a detector pipeline file), what the file given (its
	// path) is and where it belongs. A file holding one is refused with
	// that alone, not as a list of unknown keys or typos.
	FileKinds map[string]func(path string) string
}

// Flags registers -config FILE and -set key=value (repeatable) on fs and
// returns the Options they fill in when fs is parsed.
func Flags(fs *flag.FlagSet, envPrefix string) *Options {
	opts := &Options{EnvPrefix: envPrefix}
	fs.StringVar(&opts.File, "config", "", "YAML configuration `file`")
	envHelp := ""
	if envPrefix != "" {
		envHelp = fmt.Sprintf("; overrides the file and %s_* environment variables", envPrefix)
	}
	fs.Func("set", "set a configuration `key=value` (repeatable, e.g. bus.urls=[nats://a:4222])"+envHelp,
		func(s string) error {
			if _, _, ok := strings.Cut(s, "="); !ok {
				return fmt.Errorf("%q is not key=value", s)
			}
			opts.Sets = append(opts.Sets, s)
			return nil
		})
	return opts
}

// Load fills dst, a non-nil pointer to a struct with yaml tags, from the
// sources in opts (see the package documentation for precedence), then calls
// dst.Validate if dst implements Validator. Every error wraps
// ErrInvalidConfig and is permanent: retrying will not fix a configuration.
func Load(dst any, opts Options) error {
	if err := load(dst, opts); err != nil {
		return errs.Permanent(fmt.Errorf("%w: %w", ErrInvalidConfig, err))
	}
	return nil
}

func load(dst any, opts Options) error {
	root := reflect.ValueOf(dst)
	if root.Kind() != reflect.Pointer || root.IsNil() || root.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config.Load needs a non-nil pointer to a struct, got %T", dst)
	}
	if opts.File != "" {
		if err := loadFile(dst, opts.File, opts.FileKinds); err != nil {
			return err
		}
	}
	if opts.EnvPrefix != "" {
		environ := opts.Environ
		if environ == nil {
			environ = os.Environ()
		}
		if err := applyEnv(root.Elem(), opts.EnvPrefix, opts.EnvIgnore, environ); err != nil {
			return err
		}
	}
	for _, s := range opts.Sets {
		if err := applySet(root.Elem(), s); err != nil {
			return err
		}
	}
	if v, ok := dst.(Validator); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func loadFile(dst any, path string, kinds map[string]func(string) string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return fmt.Errorf("config file %s: larger than %d bytes", path, MaxFileSize)
	}

	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file keeps the defaults
		}
		return errors.New(fileMessage(path, yamlMessage(err), lineKeys{}))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: holds more than one YAML document", path)
	}

	// Our own walk names every unknown key with its full path and line, which
	// yaml.v3's KnownFields does only for the first, without the path.
	var unknown []error
	var otherKind error
	topUnknown := 0
	checkKeys(&doc, reflect.TypeOf(dst).Elem(), "", func(u unknownKey) {
		key := join(u.parent, u.key)
		hint := ""
		if u.parent == "" {
			topUnknown++
		}
		switch kind := kinds[u.key]; {
		case u.parent == "" && kind != nil:
			if otherKind == nil {
				otherKind = fmt.Errorf("%s:%d: %w %q: %s", path, u.line, ErrUnknownKey, key, kind(path))
			}
			hint = suggestion(u.parent, u.key, u.known)
		case u.envOnly:
			hint = " (a secret: set it from the environment, not the file)"
		default:
			hint = suggestion(u.parent, u.key, u.known)
		}
		unknown = append(unknown, fmt.Errorf("%s:%d: %w %q%s", path, u.line, ErrUnknownKey, key, hint))
	})
	// A file whose every top-level key is unknown is of another kind, said
	// alone; a configuration with such a key besides its own (a section
	// indented wrong) gets its unknown keys listed, as any other.
	if otherKind != nil && topUnknown == topLevelKeys(&doc) {
		return otherKind
	}
	if len(unknown) > 0 {
		return errors.Join(unknown...)
	}

	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		keys := lineKeys{scalars: map[int]string{}, composites: map[int]string{}}
		keyLines(&doc, "", keys)
		return errors.New(fileMessage(path, yamlMessage(err), keys))
	}
	return nil
}

// topLevelKeys counts the keys of the document's top-level mapping.
func topLevelKeys(doc *yaml.Node) int {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return 0
	}
	return len(doc.Content[0].Content) / 2
}

// lineKeys says which key a line of the file holds, so that a type error
// ("line 3: cannot unmarshal ...") can name the key as well as the line:
// scalars for a scalar of the wrong type, the outermost list or mapping
// starting on the line for "!!seq" and "!!map" (yaml.v3 gives a block
// mapping the line of its first key). A line holding unrelated keys (a
// flow mapping's siblings) maps to "": the line alone says it best.
type lineKeys struct{ scalars, composites map[int]string }

func (lk lineKeys) key(line int, problem string) string {
	if strings.Contains(problem, "!!seq") || strings.Contains(problem, "!!map") {
		return lk.composites[line]
	}
	return lk.scalars[line]
}

func recordKey(keys map[int]string, line int, key string) {
	old, seen := keys[line]
	switch {
	case !seen:
		keys[line] = key
	case old != "" && (strings.HasPrefix(key, old+".") || strings.HasPrefix(key, old+"[")):
		// Inside the outer one on the same line ("bus: {urls: [a]}").
	default:
		keys[line] = ""
	}
}

// keyLines records the key of every line under n at path. yaml.v3 reports
// a problem in an alias's value (or a merged mapping's) at the line of the
// anchored node: those lines are walked again under the alias's key, so a
// line that stands for several keys names none (expanding: the anchors
// being walked, so that one holding an alias of itself ends).
func keyLines(n *yaml.Node, path string, lk lineKeys) { keyLinesIn(n, path, lk, nil) }

func keyLinesIn(n *yaml.Node, path string, lk lineKeys, expanding []*yaml.Node) {
	if path != "" {
		switch n.Kind {
		case yaml.ScalarNode, yaml.AliasNode:
			recordKey(lk.scalars, n.Line, path)
		case yaml.MappingNode, yaml.SequenceNode:
			recordKey(lk.composites, n.Line, path)
		}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyLinesIn(c, path, lk, expanding)
		}
	case yaml.AliasNode:
		if n.Alias != nil && !slices.Contains(expanding, n.Alias) {
			keyLinesIn(n.Alias, path, lk, append(expanding, n.Alias))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag != "!!merge" && k.Value != "<<" {
				keyLinesIn(v, join(path, k.Value), lk, expanding)
				continue
			}
			// merged keys are this mapping's own
			merged := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				merged = v.Content
			}
			for _, m := range merged {
				if m.Kind == yaml.AliasNode && m.Alias != nil && !slices.Contains(expanding, m.Alias) {
					keyLinesIn(m.Alias, path, lk, append(expanding, m.Alias))
				}
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			keyLinesIn(c, fmt.Sprintf("%s[%d]", path, i), lk, expanding)
		}
	}
}

var (
	lineRef = regexp.MustCompile(`line (\d+): `)
	// quotedValue is the value yaml.v3 quotes in a type error, from the
	// first backtick to the last, line breaks included: the value may
	// hold either. It is applied to one problem at a time (yamlMessage).
	quotedValue = regexp.MustCompile("(?s)`.*`")
	// quotedName is what yaml.v3 quotes outside its type errors: an
	// anchor's name ("unknown anchor 'x' referenced", from a value that
	// starts with '*': a token from AIOPS_INGEST__TOKENS='[*...]') and a
	// mapping key given twice.
	quotedName = regexp.MustCompile(`(?s)(anchor )'.*'( referenced| value contains itself)|(mapping key )".*"( already defined)`)
)

// yamlMessage is err's message with the values yaml.v3 quotes in its type
// errors replaced by "value" (they may be secrets put in the wrong
// place), each problem on its own: a value may hold the line break that
// also separates the problems of the message.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	problems := make([]string, len(te.Errors))
	for i, p := range te.Errors {
		problems[i] = quotedValue.ReplaceAllString(p, "value")
	}
	return (&yaml.TypeError{Errors: problems}).Error()
}

// fileMessage turns yaml.v3's "line N: ..." into "path:N: ..." (with the
// key at line N when keys knows it) and drops the values it quotes, which
// may be secrets put in the wrong place. Each problem of a multi-line
// message gets its own hint.
func fileMessage(path, msg string, keys lineKeys) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	problems := strings.Split(msg, "\n  ")
	for i, p := range problems {
		p = lineRef.ReplaceAllStringFunc(p, func(ref string) string {
			n, _ := strconv.Atoi(lineRef.FindStringSubmatch(ref)[1])
			if key := keys.key(n, p); key != "" {
				return fmt.Sprintf("%s:%d: key %q: ", path, n, key)
			}
			return fmt.Sprintf("%s:%d: ", path, n)
		})
		if !strings.HasPrefix(p, path) {
			p = path + ": " + p
		}
		problems[i] = valueMessage(p)
	}
	return strings.Join(problems, "\n  ")
}

// valueMessage removes quoted values from a yaml.v3 message and explains the
// one mistake everybody makes with durations.
func valueMessage(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = quotedValue.ReplaceAllString(msg, "value")
	msg = quotedName.ReplaceAllString(msg, "${1}${3}(not shown)${2}${4}")
	if strings.Contains(msg, "time.Duration") {
		msg += ` (a duration needs a unit, e.g. "5s" or "250ms")`
	}
	return msg
}

// unknownKey is a key of the file that the configuration does not have.
type unknownKey struct {
	parent, key string
	line        int
	envOnly     bool     // a secret's key, which only the environment sets
	known       []string // the keys parent does have
}

// checkKeys reports every mapping key under n that type t has no field for.
func checkKeys(n *yaml.Node, t reflect.Type, path string, report func(unknownKey)) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkKeys(c, t, path, report)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if decodesItself(t) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch with its line
		}
		fields := structFields(t)
		if fields.catchAll {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" || k.Value == "<<" {
				checkKeys(v, t, path, report)
				continue
			}
			f, ok := fields.byKey[k.Value]
			if !ok {
				_, envOnly := fields.envOnly[k.Value]
				report(unknownKey{parent: path, key: k.Value, line: k.Line, envOnly: envOnly, known: slices.Collect(maps.Keys(fields.byKey))})
				continue
			}
			checkKeys(v, f.typ, join(path, k.Value), report)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), report)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), report)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	yamlUnmarshaler = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	textUnmarshaler = reflect.TypeOf((*interface{ UnmarshalText([]byte) error })(nil)).Elem()
)

// decodesItself reports whether values of t parse their own YAML, so their
// inner structure is not ours to check or address.
func decodesItself(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(yamlUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) ||
		t.Implements(yamlUnmarshaler)
}

// field is one addressable configuration key of a struct.
type field struct {
	key     string
	index   []int // reflect field index path, through inlined structs
	typ     reflect.Type
	envOnly bool // `yaml:"-" env:"key"`: settable only from the environment
}

type fieldSet struct {
	byKey    map[string]field // keys the file and -set may use
	envOnly  map[string]field // keys only the environment may use
	catchAll bool             // an ,inline map takes every other key
}

// structFields mirrors yaml.v3's rules: the yaml tag name, else the lower-cased
// field name; "-" skips; ",inline" lifts the fields of an embedded struct.
func structFields(t reflect.Type) fieldSet {
	fs := fieldSet{byKey: map[string]field{}, envOnly: map[string]field{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.PkgPath != "" && !sf.Anonymous {
			continue
		}
		tag := sf.Tag.Get("yaml")
		name, flags, _ := strings.Cut(tag, ",")
		if tag == "-" {
			if env := sf.Tag.Get("env"); env != "" {
				fs.envOnly[env] = field{key: env, index: []int{i}, typ: sf.Type, envOnly: true}
			}
			continue
		}
		if strings.Contains(","+flags+",", ",inline,") {
			ft := sf.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Map:
				fs.catchAll = true
			case reflect.Struct:
				inner := structFields(ft)
				fs.catchAll = fs.catchAll || inner.catchAll
				for k, f := range inner.byKey {
					f.index = append([]int{i}, f.index...)
					fs.byKey[k] = f
				}
				for k, f := range inner.envOnly {
					f.index = append([]int{i}, f.index...)
					fs.envOnly[k] = f
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		fs.byKey[name] = field{key: name, index: []int{i}, typ: sf.Type}
	}
	return fs
}

// source says where an assignment came from, for error messages.
type source struct {
	desc string // e.g. `environment variable AIOPS_BUS__URLS`
	env  bool   // keys match case-insensitively and env-only fields are visible
}

func applyEnv(root reflect.Value, prefix string, ignore, environ []string) error {
	prefix += "_"
	var names []string
	values := map[string]string{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, prefix) || ignored(name, ignore) {
			continue
		}
		if _, seen := values[name]; !seen {
			names = append(names, name)
		}
		values[name] = value
	}
	sort.Strings(names) // deterministic order: parents before their children
	var problems []error
	for _, name := range names {
		src := source{desc: "environment variable " + name, env: true}
		// Segments as written: struct fields match them ignoring case,
		// map keys by mapKey's rules.
		path := strings.Split(strings.TrimPrefix(name, prefix), "__")
		if err := assign(root, path, values[name], src); err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
}

// ignored reports whether the variable name is one of ignore
// (Options.EnvIgnore).
func ignored(name string, ignore []string) bool {
	for _, p := range ignore {
		if name == p || strings.HasPrefix(name, strings.TrimSuffix(p, "_")+"_") {
			return true
		}
	}
	return false
}

func applySet(root reflect.Value, s string) error {
	key, value, ok := strings.Cut(s, "=")
	src := source{desc: fmt.Sprintf("flag -set %s", key)}
	if !ok {
		return fmt.Errorf("flag -set %q: want key=value", key)
	}
	if key == "" {
		return fmt.Errorf("flag -set: empty key before '='")
	}
	return assign(root, strings.Split(key, "."), value, src)
}

// assign sets the key at path under v to the raw value.
func assign(v reflect.Value, path []string, raw string, src source) error {
	for _, seg := range path {
		if seg == "" {
			return fmt.Errorf("%s: key %q has an empty segment", src.desc, src.dotted(path))
		}
	}
	// Resolve the path on types first, so a mistake is reported before any
	// nil pointer or map on the way has been allocated.
	if err := resolve(v.Type(), path, src, ""); err != nil {
		return err
	}
	return set(v, path, raw, src, "")
}

// dotted is path as a key for messages; a variable's in lower case, as a
// variable's name carries no case.
func (src source) dotted(path []string) string {
	if src.env {
		return strings.ToLower(strings.Join(path, "."))
	}
	return strings.Join(path, ".")
}

func resolve(t reflect.Type, path []string, src source, done string) error {
	if len(path) == 0 {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	seg := path[0]
	if !decodesItself(t) {
		switch t.Kind() {
		case reflect.Struct:
			if f, ok := lookup(t, seg, src); ok {
				return resolve(f.typ, path[1:], src, join(done, f.key))
			}
			fs := structFields(t)
			if _, secret := fs.envOnly[seg]; secret && !src.env {
				// As from the file; here the value is also in every
				// process listing.
				return fmt.Errorf("%s: %w %q (a secret: set it from the environment, not the command line, which other users of the machine can read)",
					src.desc, ErrUnknownKey, join(done, seg))
			}
			known := slices.Collect(maps.Keys(fs.byKey))
			if src.env {
				known = slices.AppendSeq(known, maps.Keys(fs.envOnly))
			}
			return fmt.Errorf("%s: %w %q%s", src.desc, ErrUnknownKey, join(done, src.dotted(path[:1])), suggestion(done, src.dotted(path[:1]), known))
		case reflect.Map:
			if t.Key().Kind() == reflect.String {
				key := seg
				if src.env {
					key = newEnvKey(seg)
				}
				return resolve(t.Elem(), path[1:], src, join(done, key))
			}
		}
	}
	seg = src.dotted(path[:1])
	if done == "" {
		return fmt.Errorf("%s: %w %q", src.desc, ErrUnknownKey, seg)
	}
	return fmt.Errorf("%s: %w %q: %s takes %s and has no sub-keys", src.desc, ErrUnknownKey,
		join(done, seg), done, describe(t))
}

func lookup(t reflect.Type, seg string, src source) (field, bool) {
	fs := structFields(t)
	if f, ok := fs.byKey[seg]; ok {
		return f, true
	}
	if !src.env {
		return field{}, false
	}
	for k, f := range fs.byKey {
		if strings.EqualFold(k, seg) {
			return f, true
		}
	}
	for k, f := range fs.envOnly {
		if strings.EqualFold(k, seg) {
			return f, true
		}
	}
	return field{}, false
}

// set sets the key at path under v, done being the key of v, as the
// messages name it.
func set(v reflect.Value, path []string, raw string, src source, done string) error {
	for v.Kind() == reflect.Pointer && len(path) > 0 {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if len(path) == 0 {
		return setValue(v, raw, src, done)
	}
	switch v.Kind() {
	case reflect.Struct:
		f, _ := lookup(v.Type(), path[0], src)
		return set(fieldByIndex(v, f.index), path[1:], raw, src, join(done, f.key))
	case reflect.Map:
		name, err := mapKey(v, path[0], src, done)
		if err != nil {
			return err
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		key := reflect.ValueOf(name).Convert(v.Type().Key())
		elem := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		if err := set(elem, path[1:], raw, src, join(done, name)); err != nil {
			return err
		}
		v.SetMapIndex(key, elem)
		return nil
	}
	return fmt.Errorf("%s: key %q cannot be addressed", src.desc, join(done, src.dotted(path)))
}

// newEnvKey is the map key a variable's segment adds: in lower case when
// it is all capitals, as written otherwise.
func newEnvKey(seg string) string {
	if strings.ToUpper(seg) == seg {
		return strings.ToLower(seg)
	}
	return seg
}

// mapKey is the key of map m that the path segment seg names. The file and
// -set name keys as written. A variable's name carries no case (the usual
// spelling, AIOPS_RECEIVERS__OPS__URL, is all capitals), so its segment
// names the key spelled exactly so, else the one key that matches it
// ignoring case (the file's "Ops"), else a new key: in lower case when seg
// is all capitals, as written otherwise (AIOPS_LABELS__Team). Two keys
// that match it only ignoring case are an error naming them: -set can
// tell them apart.
func mapKey(m reflect.Value, seg string, src source, done string) (string, error) {
	if !src.env {
		return seg, nil
	}
	var matches []string
	for it := m.MapRange(); it.Next(); {
		k := it.Key().String()
		if k == seg {
			return k, nil
		}
		if strings.EqualFold(k, seg) {
			matches = append(matches, k)
		}
	}
	switch len(matches) {
	case 0:
		return newEnvKey(seg), nil
	case 1:
		return matches[0], nil
	}
	slices.Sort(matches)
	quoted := make([]string, len(matches))
	for i, k := range matches {
		quoted[i] = strconv.Quote(k)
	}
	return "", fmt.Errorf("%s: key %q matches %s, which a variable's name cannot tell apart: set one with -set %s", src.desc,
		join(done, strings.ToLower(seg)), strings.Join(quoted, " and "), join(done, "KEY=VALUE"))
}

// fieldByIndex is reflect.Value.FieldByIndex allocating nil inlined pointers.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 {
			for v.Kind() == reflect.Pointer {
				if v.IsNil() {
					v.Set(reflect.New(v.Type().Elem()))
				}
				v = v.Elem()
			}
		}
		v = v.Field(x)
	}
	return v
}

// setValue parses raw into v. Strings are taken literally, because DSNs and
// passwords are full of characters YAML gives meaning to (#, &, *, ": ").
// Everything else is a YAML scalar or flow collection ("5s", "true",
// "[a, b]", "{k: v}"); a collection replaces a list and merges into a struct.
func setValue(v reflect.Value, raw string, src source, dotted string) error {
	target := reflect.New(v.Type())
	target.Elem().Set(v)
	var err error
	if v.Kind() == reflect.String && !decodesItself(v.Type()) {
		target.Elem().SetString(raw)
	} else if v.Kind() == reflect.String {
		err = (&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: raw}).Decode(target.Interface())
	} else {
		dec := yaml.NewDecoder(strings.NewReader(raw))
		dec.KnownFields(true)
		err = dec.Decode(target.Interface())
		if errors.Is(err, io.EOF) { // empty value: the zero value
			target.Elem().Set(reflect.Zero(v.Type()))
			err = nil
		}
	}
	if err != nil {
		msg := strings.ReplaceAll(yamlMessage(err), "unmarshal errors:\n  ", "")
		msg = lineRef.ReplaceAllString(msg, "")
		return fmt.Errorf("%s: key %q wants %s: %s", src.desc, dotted, describe(v.Type()), valueMessage(msg))
	}
	v.Set(target.Elem())
	return nil
}

func describe(t reflect.Type) string {
	switch {
	case t.String() == "time.Duration":
		return `a duration like "5s"`
	case t.Kind() == reflect.Slice:
		return "a list like [a, b]"
	case t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
		return "a mapping like {key: value}"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "an integer"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uintptr:
		return "a non-negative integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	}
	return "a value of type " + t.String()
}

// suggestion is " (did you mean "parent.k"?)" for the known key k closest
// to key when it is close enough to be a typo of it (an edit or two, fewer
// for a short key), else "". Case does not count: a variable's name has none.
func suggestion(parent, key string, known []string) string {
	limit := min(2, max(1, len(key)/3))
	best, bestDist := "", limit+1
	slices.Sort(known) // of two as close, the first: the same every time
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", join(parent, best))
}

// editDistance counts the insertions, deletions, substitutions and
// swaps of adjacent bytes that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
