//go:build !noaws

package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
	"github.com/shoalmesh/shoal/scale/providers"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func decision(cur, desired int) scale.Decision {
	a := scale.ActionUp
	if desired < cur {
		a = scale.ActionDown
	}
	return scale.Decision{Time: t0, Current: cur, Desired: desired, Action: a, Metric: "cpu", Value: 91, Target: 70,
		Reasons: []string{"cpu 91.0 vs target 70: ceil(3 × 1.300) = 4"}}
}

// fakeASG stands in for the Auto Scaling service (the query protocol: form
// posts, XML answers) behind the SDK's BaseEndpoint seam, and records the
// requests the SDK sends.
type fakeASG struct {
	mu       sync.Mutex
	min, max int
	desired  int
	tags     map[string]string
	// instances are the group's instances: "STATE/HEALTH" each.
	instances []string
	requests  []url.Values
	auth      []string
}

func (f *fakeASG) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.PostForm)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "text/xml")
	const ns = `xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"`
	switch r.PostForm.Get("Action") {
	case "DescribeAutoScalingGroups":
		groups := ""
		if r.PostForm.Get("AutoScalingGroupNames.member.1") == "web" {
			tags := ""
			for k, v := range f.tags {
				tags += fmt.Sprintf("<member><Key>%s</Key><Value>%s</Value><ResourceId>web</ResourceId><ResourceType>auto-scaling-group</ResourceType><PropagateAtLaunch>false</PropagateAtLaunch></member>", k, v)
			}
			insts := ""
			for i, sh := range f.instances {
				st, health, _ := strings.Cut(sh, "/")
				insts += fmt.Sprintf("<member><InstanceId>i-%d</InstanceId><AvailabilityZone>eu-west-1a</AvailabilityZone><LifecycleState>%s</LifecycleState><HealthStatus>%s</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>", i, st, health)
			}
			groups = fmt.Sprintf("<member><AutoScalingGroupName>web</AutoScalingGroupName><MinSize>%d</MinSize><MaxSize>%d</MaxSize><DesiredCapacity>%d</DesiredCapacity><Instances>%s</Instances><Tags>%s</Tags></member>", f.min, f.max, f.desired, insts, tags)
		}
		fmt.Fprintf(w, `<DescribeAutoScalingGroupsResponse %s><DescribeAutoScalingGroupsResult><AutoScalingGroups>%s</AutoScalingGroups></DescribeAutoScalingGroupsResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>`, ns, groups)
	case "CreateOrUpdateTags":
		f.tags[r.PostForm.Get("Tags.member.1.Key")] = r.PostForm.Get("Tags.member.1.Value")
		fmt.Fprintf(w, `<CreateOrUpdateTagsResponse %s><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></CreateOrUpdateTagsResponse>`, ns)
	case "SetDesiredCapacity":
		n, _ := strconv.Atoi(r.PostForm.Get("DesiredCapacity"))
		if n < f.min || n > f.max {
			w.WriteHeader(400)
			fmt.Fprintf(w, `<ErrorResponse %s><Error><Type>Sender</Type><Code>ValidationError</Code><Message>New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.</Message></Error><RequestId>r3</RequestId></ErrorResponse>`, ns, n, f.max)
			return
		}
		f.desired = n
		fmt.Fprintf(w, `<SetDesiredCapacityResponse %s><ResponseMetadata><RequestId>r3</RequestId></ResponseMetadata></SetDesiredCapacityResponse>`, ns)
	default:
		http.Error(w, "unexpected action "+r.PostForm.Get("Action"), 400)
	}
}

func awsEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

// TestAWS runs the AWS provider against a stand-in for the service, in
// this process and through the helper process the agent uses: the same
// requests, the same fencing, the same errors (errors.Is holds across the
// process) either way.
func TestAWS(t *testing.T) {
	t.Run("in-process", func(t *testing.T) { testAWS(t, NewAWS) })
	t.Run("helper", func(t *testing.T) { useHelper(t); testAWS(t, providers.HelperFactory(providers.AWSName)) })
}

func testAWS(t *testing.T, factory scale.Factory) {
	awsEnv(t)
	newProvider := func(t *testing.T, cfg scale.ProviderConfig) scale.Provider {
		t.Helper()
		if cfg.StateDir == "" {
			cfg.StateDir = t.TempDir()
		}
		cfg.Logger = slog.New(slog.DiscardHandler) // as scale.NewProvider sets it
		p, err := factory(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := p.(interface{ Close() error }); ok {
			t.Cleanup(func() { c.Close() })
		}
		return p
	}
	f := &fakeASG{min: 1, max: 5, desired: 3, tags: map[string]string{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := scale.ProviderConfig{Name: providers.AWSName, Resource: "web", Options: map[string]string{"endpoint": srv.URL}}
	p := newProvider(t, cfg)
	ctx := context.Background()
	if n, err := p.Current(ctx); err != nil || n != 3 {
		t.Fatalf("current %d %v", n, err)
	}
	// Ready: InService and Healthy only.
	f.mu.Lock()
	f.instances = []string{"InService/Healthy", "InService/Healthy", "Pending/Healthy", "InService/Unhealthy", "Terminating/Healthy"}
	f.mu.Unlock()
	rr, ok := p.(scale.ReadyReader)
	if !ok {
		t.Fatalf("%T reads no ready count", p)
	}
	if c, err := rr.Counts(ctx); err != nil || c != (scale.Counts{Current: 3, Ready: 2, ReadyKnown: true}) {
		t.Fatalf("counts %+v %v: want 3 desired, 2 InService and Healthy", c, err)
	}
	lease := fence.Lease{Holder: "el-3", Priority: 3, Term: 4}
	// Asking for 9 sets 5: the group's max.
	if err := p.Scale(ctx, 9, lease, decision(3, 9)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	var set url.Values
	for _, r := range f.requests {
		if r.Get("Action") == "SetDesiredCapacity" {
			set = r
		}
	}
	if set == nil || set.Get("AutoScalingGroupName") != "web" || set.Get("DesiredCapacity") != "5" || set.Get("HonorCooldown") != "false" || set.Get("Version") != "2011-01-01" {
		t.Fatalf("SetDesiredCapacity request: %v", set)
	}
	if f.tags[AWSTermTag] != "4/3/el-3" || !strings.HasSuffix(f.tags[AWSLastTag], "/3/5") {
		t.Fatalf("tags %v", f.tags)
	}
	if a := f.auth[len(f.auth)-1]; !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(a, "/eu-west-1/autoscaling/") {
		t.Fatalf("request not signed for the region: %q", a)
	}
	f.mu.Unlock()
	last, ok, err := p.(scale.LastActionReader).LastAction(ctx)
	if err != nil || !ok || last.From != 3 || last.To != 5 || last.Lease != lease || !last.Time.Equal(t0) {
		t.Fatalf("last action %+v %v %v", last, ok, err)
	}
	// A second node's provider (its own local fence) with a lower term is
	// refused by the tag on the group, before any write.
	other := newProvider(t, cfg)
	f.mu.Lock()
	n := len(f.requests)
	f.mu.Unlock()
	err = other.Scale(ctx, 2, fence.Lease{Holder: "el-2", Priority: 2, Term: 3}, decision(5, 2))
	if !errors.Is(err, fence.ErrStaleTerm) || !strings.Contains(err.Error(), `term tag "4/3/el-3"`) {
		t.Fatalf("lower term against the group's tag: %v", err)
	}
	f.mu.Lock()
	for _, r := range f.requests[n:] {
		if a := r.Get("Action"); a != "DescribeAutoScalingGroups" {
			t.Fatalf("a refused lease wrote %s", a)
		}
	}
	f.mu.Unlock()
	// A higher term from the other node goes through.
	if err := other.Scale(ctx, 2, fence.Lease{Holder: "el-2", Priority: 2, Term: 5}, decision(5, 2)); err != nil {
		t.Fatal(err)
	}
	if n, _ := p.Current(ctx); n != 2 {
		t.Fatalf("current after the second node's action: %d", n)
	}
	// A group that does not exist: a clear error at start-up.
	discard := slog.New(slog.DiscardHandler)
	_, err = factory(scale.ProviderConfig{Name: providers.AWSName, Resource: "nope", StateDir: t.TempDir(), Options: map[string]string{"endpoint": srv.URL}, Logger: discard})
	if !errors.Is(err, providers.ErrNoGroup) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing group: %v", err)
	}
	_, err = factory(scale.ProviderConfig{Name: providers.AWSName, StateDir: t.TempDir(), Logger: discard})
	if !errors.Is(err, scale.ErrProviderConfig) || !strings.Contains(err.Error(), "no group") {
		t.Fatalf("no group named: %v", err)
	}
}
