package platform

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Component is one aiops service as a value: its name (which is also its
// configuration section and its log component), its section's defaults,
// whether it needs ClickHouse, and how to build it on a Platform. Every
// service binary (ServiceMain) and `aiops run` are assembled from these, so
// adding a service is its own folder plus one line in `aiops run`'s list.
type Component struct {
	Name       string
	NeedsStore bool

	section reflect.Type
	// defaults is a *section holding the section's defaults.
	defaults func() reflect.Value
	build    func(ctx context.Context, p *Platform, section reflect.Value, log zerolog.Logger) (service.Runner, error)
}

// NewComponent describes a service whose configuration section is a C,
// with defaults from defaults() and built by build. A runner that also has
// a Collector() method has its metrics registered on the platform.
func NewComponent[C config.Validator](name string, defaults func() C, needsStore bool,
	build func(ctx context.Context, p *Platform, cfg C, log zerolog.Logger) (service.Runner, error)) Component {
	return Component{
		Name:       name,
		NeedsStore: needsStore,
		section:    reflect.TypeFor[C](),
		defaults: func() reflect.Value {
			v := reflect.New(reflect.TypeFor[C]())
			v.Elem().Set(reflect.ValueOf(defaults()))
			return v
		},
		build: func(ctx context.Context, p *Platform, section reflect.Value, log zerolog.Logger) (service.Runner, error) {
			return build(ctx, p, section.Interface().(C), log)
		},
	}
}

// Section is an extra configuration section beside the components' (the
// embedded NATS server of `aiops run`): Value points at its defaults and
// receives what was loaded.
type Section struct {
	Key   string
	Value config.Validator // a pointer
}

// AssembledConfig is a configuration assembled from components: the shared
// platform Config inline, the extra sections, then a section per component
// under its name. Load fills it from the -config file, the environment and
// -set flags with the same strict rules as every aiops config.
type AssembledConfig struct {
	comps []Component
	extra []Section
	v     reflect.Value // *struct
}

// Assemble builds the configuration of comps with base as the shared part.
func Assemble(base Config, comps []Component, extra ...Section) *AssembledConfig {
	fields := []reflect.StructField{{Name: "Platform", Type: reflect.TypeFor[Config](), Tag: `yaml:",inline"`}}
	for i, s := range extra {
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("Extra%d", i), Type: reflect.TypeOf(s.Value).Elem(), Tag: reflect.StructTag(`yaml:"` + s.Key + `"`)})
	}
	for i, c := range comps {
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("Component%d", i), Type: c.section, Tag: reflect.StructTag(`yaml:"` + c.Name + `"`)})
	}
	v := reflect.New(reflect.StructOf(fields))
	v.Elem().Field(0).Set(reflect.ValueOf(base))
	for i, s := range extra {
		v.Elem().Field(1 + i).Set(reflect.ValueOf(s.Value).Elem())
	}
	for i, c := range comps {
		v.Elem().Field(1 + len(extra) + i).Set(c.defaults().Elem())
	}
	return &AssembledConfig{comps: comps, extra: extra, v: v}
}

// Load fills the configuration from the flags in args (-config, -set) and
// the environment, copies the extra sections back to their pointers and
// validates everything. Every error is a usage error (exit code 2) that
// names the key.
func (a *AssembledConfig) Load(name string, args []string) error {
	opts, err := ParseFlags(name, args)
	if err != nil {
		return err
	}
	return a.LoadWith(opts)
}

// LoadWith is Load from given sources.
func (a *AssembledConfig) LoadWith(opts config.Options) error {
	if err := config.Load(a.v.Interface(), opts); err != nil {
		return service.Usage(err)
	}
	for i, s := range a.extra {
		reflect.ValueOf(s.Value).Elem().Set(a.v.Elem().Field(1 + i))
	}
	if err := a.Validate(); err != nil {
		if errors.Is(err, config.ErrInvalidConfig) { // says so itself ("store: invalid configuration: ...")
			return service.Usage(err)
		}
		return service.Usage(fmt.Errorf("%w: %w", config.ErrInvalidConfig, err))
	}
	return nil
}

// Validate checks the shared part, the store when a component needs it,
// the extra sections and every component's section; each error names the
// full key.
func (a *AssembledConfig) Validate() error {
	if err := a.Platform().Validate(); err != nil {
		return err
	}
	// The store is checked here, with the rest, and not only by Open: a
	// store.dsn that cannot work is then a usage error before anything
	// starts (`aiops run` had started its embedded NATS and connected).
	if a.NeedsStore() {
		if err := a.Platform().Store.Validate(); err != nil {
			return err // says "store: ..." itself
		}
	}
	for i := range a.extra {
		if err := a.v.Elem().Field(1 + i).Interface().(config.Validator).Validate(); err != nil {
			return err
		}
	}
	for i := range a.comps {
		if err := a.section(i).Interface().(config.Validator).Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Platform is the shared part, its store's pool sized for the components
// that say how many ClickHouse connections they use at once (a section
// with a StoreConns method: the writer's inserts).
func (a *AssembledConfig) Platform() Config {
	c := a.v.Elem().Field(0).Interface().(Config)
	for i := range a.comps {
		if n, ok := a.section(i).Interface().(interface{ StoreConns() int }); ok {
			c.Store.NeededConns = max(c.Store.NeededConns, n.StoreConns())
		}
	}
	return c
}

// SetPlatform replaces the shared part (`aiops run` points the bus at its
// embedded server).
func (a *AssembledConfig) SetPlatform(c Config) { a.v.Elem().Field(0).Set(reflect.ValueOf(c)) }

func (a *AssembledConfig) section(i int) reflect.Value {
	return a.v.Elem().Field(1 + len(a.extra) + i)
}

// NeedsStore reports whether any component needs ClickHouse.
func (a *AssembledConfig) NeedsStore() bool {
	for _, c := range a.comps {
		if c.NeedsStore {
			return true
		}
	}
	return false
}

// Build builds every component on p, in order, registering the metrics of
// those that export them; the runners are named after their components.
func (a *AssembledConfig) Build(ctx context.Context, p *Platform, logComponents bool) ([]service.Runner, error) {
	runners := make([]service.Runner, 0, len(a.comps))
	for i, c := range a.comps {
		log := p.Log
		if logComponents {
			log = log.With().Str("component", c.Name).Logger()
		}
		r, err := c.build(ctx, p, a.section(i), log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		if col, ok := r.(interface{ Collector() prometheus.Collector }); ok {
			if err := p.Registry.Register(col.Collector()); err != nil {
				return nil, fmt.Errorf("%s: metrics: %w", c.Name, err)
			}
		}
		runners = append(runners, service.Named(c.Name, r))
	}
	return runners, nil
}

// ServiceMain is the Main of a binary that runs one component: load its
// configuration (exit code 2 on any problem), open the platform, build the
// component, run it until a signal.
func ServiceMain(c Component) func(ctx context.Context, args []string) error {
	return func(ctx context.Context, args []string) error {
		cfg := Assemble(DefaultConfig(), []Component{c})
		if err := cfg.Load(c.Name, args); err != nil {
			return err
		}
		return RunAssembled(ctx, c.Name, cfg, false)
	}
}

// RunAssembled opens the platform for cfg's components, builds them and
// runs them until a signal.
func RunAssembled(ctx context.Context, name string, cfg *AssembledConfig, logComponents bool, opts ...Option) error {
	if cfg.NeedsStore() {
		opts = append(opts, WithStore())
	}
	p, err := Open(ctx, name, cfg.Platform(), opts...)
	if err != nil {
		return err
	}
	runners, err := cfg.Build(ctx, p, logComponents)
	if err != nil {
		p.Close()
		if errors.Is(err, config.ErrInvalidConfig) {
			return service.Usage(err)
		}
		return err
	}
	return p.Run(ctx, runners...)
}

// WithDefaults returns c with other defaults for its section (`aiops run`
// gives the gateway a listen address and a generated token). C must be the
// section's type: anything else is a programming error and panics.
func WithDefaults[C config.Validator](c Component, defaults func() C) Component {
	if reflect.TypeFor[C]() != c.section {
		panic(fmt.Sprintf("platform: %s's section is a %s, not a %s", c.Name, c.section, reflect.TypeFor[C]()))
	}
	c.defaults = func() reflect.Value {
		v := reflect.New(c.section)
		v.Elem().Set(reflect.ValueOf(defaults()))
		return v
	}
	return c
}

// SectionOf is the loaded section of the component called name, and
// whether cfg has one of type C.
func SectionOf[C any](a *AssembledConfig, name string) (C, bool) {
	for i, c := range a.comps {
		if c.Name == name {
			v, ok := a.section(i).Interface().(C)
			return v, ok
		}
	}
	var zero C
	return zero, false
}
