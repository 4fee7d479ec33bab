//go:build !noaws

package cloud

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
	"github.com/shoalmesh/shoal/scale/providers"
)

func init() { factories[providers.AWSName] = NewAWS }

// Tags the AWS provider keeps on the group.
const (
	// AWSTermTag holds the lease of the last action: "TERM/PRIORITY/HOLDER".
	AWSTermTag = "shoal:term"
	// AWSLastTag holds the last action: "UNIXNANO/FROM/TO".
	AWSLastTag = "shoal:last-action"
)

// AWS sets an Auto Scaling group's desired capacity (SetDesiredCapacity,
// without honouring the group's own cooldown: Shoal's policy has its own),
// clamped to the group's MinSize and MaxSize. The resource is the group's
// name. The lease of each action is kept in the group's AWSTermTag, written
// before the capacity changes, and a lease lower than the tag's (or the
// local fence's) is refused: a new coordinator on another node sees the
// term its predecessor acted under. Options: region (default: the SDK's
// chain, else us-east-1), endpoint (a base URL standing in for the service),
// timeout (per call, 15s), fence_file. Credentials come from the SDK's
// default chain (environment, shared files, instance role).
type AWS struct {
	group   string
	api     *autoscaling.Client
	timeout time.Duration
	fence   *scale.FileFence
	log     *slog.Logger
}

var (
	_ scale.Provider         = (*AWS)(nil)
	_ scale.LastActionReader = (*AWS)(nil)
	_ scale.ReadyReader      = (*AWS)(nil)
)

// NewAWS is the AWS provider's factory. It describes the group once, so
// that a missing group or missing permissions show at start-up.
func NewAWS(cfg scale.ProviderConfig) (scale.Provider, error) {
	if err := cfg.CheckOptions("region", "endpoint", "timeout", providers.OptFenceFile); err != nil {
		return nil, err
	}
	if cfg.Resource == "" {
		return nil, fmt.Errorf("%w: provider aws: no group: set --scale-resource to the Auto Scaling group's name", scale.ErrProviderConfig)
	}
	timeout, err := providers.OptDuration(cfg, "timeout", 15*time.Second)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var opts []func(*awsconfig.LoadOptions) error
	if r := cfg.Opt("region", ""); r != "" {
		opts = append(opts, awsconfig.WithRegion(r))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: provider aws: loading the SDK's configuration: %v", scale.ErrProviderConfig, err)
	}
	if ac.Region == "" {
		ac.Region = "us-east-1"
	}
	endpoint := cfg.Opt("endpoint", "")
	if endpoint != "" {
		if err := providers.CheckURL(cfg, "endpoint", endpoint); err != nil {
			return nil, err
		}
	}
	api := autoscaling.NewFromConfig(ac, func(o *autoscaling.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	f, err := providers.OpenFence(cfg)
	if err != nil {
		return nil, err
	}
	p := &AWS{group: cfg.Resource, api: api, timeout: timeout, fence: f, log: cfg.Logger.With("component", "scale-aws")}
	if _, err := p.describe(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns "aws".
func (p *AWS) Name() string { return providers.AWSName }

func (p *AWS) describe(ctx context.Context) (types.AutoScalingGroup, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	out, err := p.api.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{
		AutoScalingGroupNames: []string{p.group},
	})
	if err != nil {
		return types.AutoScalingGroup{}, fmt.Errorf("aws: describing group %q: %w", p.group, err)
	}
	for _, g := range out.AutoScalingGroups {
		if aws.ToString(g.AutoScalingGroupName) == p.group {
			return g, nil
		}
	}
	return types.AutoScalingGroup{}, fmt.Errorf("aws: %w %q (check the name and the region)", providers.ErrNoGroup, p.group)
}

func groupTag(g types.AutoScalingGroup, key string) (string, bool) {
	for _, t := range g.Tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value), true
		}
	}
	return "", false
}

// FormatLeaseTag and ParseLeaseTag encode a lease as "TERM/PRIORITY/HOLDER".
func FormatLeaseTag(l fence.Lease) string {
	return fmt.Sprintf("%d/%d/%s", l.Term, l.Priority, l.Holder)
}

// ParseLeaseTag reads FormatLeaseTag's output.
func ParseLeaseTag(s string) (fence.Lease, error) {
	parts := strings.SplitN(s, "/", 3)
	if len(parts) != 3 {
		return fence.Lease{}, fmt.Errorf("lease tag %q: want TERM/PRIORITY/HOLDER", s)
	}
	term, err1 := strconv.ParseUint(parts[0], 10, 64)
	prio, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return fence.Lease{}, fmt.Errorf("lease tag %q: want TERM/PRIORITY/HOLDER", s)
	}
	return fence.Lease{Term: term, Priority: prio, Holder: parts[2]}, nil
}

// Authoritative is true: Current reads the group's DesiredCapacity.
func (p *AWS) Authoritative() bool { return true }

// Current returns the group's desired capacity.
func (p *AWS) Current(ctx context.Context) (int, error) {
	g, err := p.describe(ctx)
	if err != nil {
		return 0, err
	}
	return int(aws.ToInt32(g.DesiredCapacity)), nil
}

// Counts returns the group's desired capacity and, as the ready count, its
// instances InService and Healthy (Pending ones boot; Terminating,
// Standby and unhealthy ones do not serve).
func (p *AWS) Counts(ctx context.Context) (scale.Counts, error) {
	g, err := p.describe(ctx)
	if err != nil {
		return scale.Counts{}, err
	}
	c := scale.Counts{Current: int(aws.ToInt32(g.DesiredCapacity)), ReadyKnown: true}
	for _, in := range g.Instances {
		if in.LifecycleState == types.LifecycleStateInService && aws.ToString(in.HealthStatus) == "Healthy" {
			c.Ready++
		}
	}
	return c, nil
}

// Scale fences the lease against the local fence and the group's term tag,
// writes the tag, then sets the desired capacity within the group's bounds.
func (p *AWS) Scale(ctx context.Context, desired int, lease fence.Lease, d scale.Decision) error {
	return p.fence.Do(lease, func(st *scale.FenceState) error {
		g, err := p.describe(ctx)
		if err != nil {
			return err
		}
		if s, ok := groupTag(g, AWSTermTag); ok {
			remote, err := ParseLeaseTag(s)
			if err != nil {
				p.log.Warn("ignoring a malformed term tag on the group", "group", p.group, "tag", s)
			} else if err := fence.New(remote).AdmitLease(lease); err != nil {
				return fmt.Errorf("aws: group %q carries term tag %q: %w", p.group, s, err)
			}
		}
		lo, hi := int(aws.ToInt32(g.MinSize)), int(aws.ToInt32(g.MaxSize))
		want := min(max(desired, lo), hi)
		if want != desired {
			p.log.Info("desired capacity clamped to the group's bounds", "group", p.group, "desired", desired, "min", lo, "max", hi, "set", want)
		}
		from := int(aws.ToInt32(g.DesiredCapacity))
		at := providers.ActionTime(d)
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		defer cancel()
		if err := p.tag(cctx, AWSTermTag, FormatLeaseTag(lease)); err != nil {
			return err
		}
		if _, err := p.api.SetDesiredCapacity(cctx, &autoscaling.SetDesiredCapacityInput{
			AutoScalingGroupName: aws.String(p.group),
			DesiredCapacity:      aws.Int32(int32(want)),
			HonorCooldown:        aws.Bool(false),
		}); err != nil {
			return fmt.Errorf("aws: SetDesiredCapacity %q to %d: %w", p.group, want, err)
		}
		if err := p.tag(cctx, AWSLastTag, fmt.Sprintf("%d/%d/%d", at.UnixNano(), from, want)); err != nil {
			p.log.Warn("capacity set, but the last-action tag was not written", "err", err)
		}
		st.Count, st.Known = want, true
		st.Last = &scale.Applied{Time: at, From: from, To: want, Lease: lease}
		return nil
	})
}

func (p *AWS) tag(ctx context.Context, key, value string) error {
	_, err := p.api.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []types.Tag{{
		Key: aws.String(key), Value: aws.String(value), ResourceId: aws.String(p.group),
		ResourceType: aws.String("auto-scaling-group"), PropagateAtLaunch: aws.Bool(false),
	}}})
	if err != nil {
		return fmt.Errorf("aws: tagging group %q with %s: %w", p.group, key, err)
	}
	return nil
}

// LastAction reads the group's last-action and term tags.
func (p *AWS) LastAction(ctx context.Context) (scale.Applied, bool, error) {
	g, err := p.describe(ctx)
	if err != nil {
		return scale.Applied{}, false, err
	}
	s, ok := groupTag(g, AWSLastTag)
	if !ok {
		return scale.Applied{}, false, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return scale.Applied{}, false, fmt.Errorf("aws: group %q: last-action tag %q: want UNIXNANO/FROM/TO", p.group, s)
	}
	ns, e1 := strconv.ParseInt(parts[0], 10, 64)
	from, e2 := strconv.Atoi(parts[1])
	to, e3 := strconv.Atoi(parts[2])
	if e1 != nil || e2 != nil || e3 != nil {
		return scale.Applied{}, false, fmt.Errorf("aws: group %q: last-action tag %q: want UNIXNANO/FROM/TO", p.group, s)
	}
	a := scale.Applied{Time: time.Unix(0, ns).UTC(), From: from, To: to}
	if ls, ok := groupTag(g, AWSTermTag); ok {
		a.Lease, _ = ParseLeaseTag(ls)
	}
	return a, true, nil
}
