//go:build !nok8s

package cloud

import (
	"github.com/shoalmesh/shoal/internal/poll"

	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/internal/k8stest"
	"github.com/shoalmesh/shoal/scale"
	"github.com/shoalmesh/shoal/scale/providers"
)

// These tests run against a real kube-apiserver and etcd (internal/k8stest,
// built by scripts/k8s-build); no fake clientset. Without the binaries they
// skip, unless SHOAL_REQUIRE_K8S=1 or CI=true.

func kubeAdmin(t *testing.T, c *k8stest.Cluster) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 100, 200 // not client-go's 5/s: tests poll and race
	return kubernetes.NewForConfigOrDie(rc)
}

func kubeNamespace(t *testing.T, cs kubernetes.Interface, name string) string {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return name
}

var kubePodTemplate = corev1.PodTemplateSpec{
	ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
	Spec: corev1.PodSpec{
		// Meets the "restricted" Pod Security level (deploy/kubernetes'
		// namespace enforces it), so the apiserver logs no warnings.
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptrTo(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name: "web", Image: "registry.invalid/web:1", // never pulled: no kubelet here
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptrTo(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	},
}

func kubeDeployment(t *testing.T, cs kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	_, err := cs.AppsV1().Deployments(ns).Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: kubePodTemplate,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func kubeReplicas(t *testing.T, cs kubernetes.Interface, ns, name string) int {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return int(*d.Spec.Replicas)
}

func kubeProvider(t *testing.T, kubeconfig, resource string) *Kubernetes {
	t.Helper()
	p, err := newKubernetesProvider(scale.ProviderConfig{
		Name: "kubernetes", Resource: resource, Node: "test-node",
		Options: map[string]string{"kubeconfig": kubeconfig, "timeout": "20s"}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Kubernetes)
}

func kubeDecision(current, desired int) scale.Decision {
	action := scale.ActionUp
	if desired < current {
		action = scale.ActionDown
	}
	return scale.Decision{Current: current, Desired: desired, Action: action, Reasons: []string{fmt.Sprintf("test: %d -> %d", current, desired)}}
}

func TestKubernetesProvider(t *testing.T) {
	c := k8stest.Start(t, k8stest.Options{})
	cs := kubeAdmin(t, c)
	ctx := context.Background()
	ns := kubeNamespace(t, cs, "shoal-test")

	t.Run("ScaleUpAndDown", func(t *testing.T) {
		kubeDeployment(t, cs, ns, "web", 1)
		p := kubeProvider(t, c.AdminKubeconfig, ns+"/deployment/web")
		if err := p.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
		lease := fence.Lease{Holder: "node-a", Priority: 1, Term: 3}
		steps := []int{1, 3, 7, 2, 0, 4}
		for i := 1; i < len(steps); i++ {
			cur, err := p.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cur != steps[i-1] {
				t.Fatalf("Current = %d, want %d", cur, steps[i-1])
			}
			if err := p.Scale(ctx, steps[i], lease, kubeDecision(cur, steps[i])); err != nil {
				t.Fatalf("Scale %d -> %d: %v", cur, steps[i], err)
			}
			if got := kubeReplicas(t, cs, ns, "web"); got != steps[i] {
				t.Fatalf("spec.replicas = %d after Scale(%d)", got, steps[i])
			}
		}
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a := d.Annotations
		if a[KubernetesAnnotationTerm] != "3" || a[KubernetesAnnotationHolder] != "node-a" || a[KubernetesAnnotationPriority] != "1" {
			t.Errorf("annotations = %v, want term 3, holder node-a, priority 1", a)
		}
		last, ok, err := p.LastAction(ctx)
		if err != nil || !ok {
			t.Fatalf("LastAction: %v %v", ok, err)
		}
		if last.From != 0 || last.To != 4 || last.Lease != lease || last.Time.IsZero() {
			t.Errorf("LastAction = %+v, want 0 -> 4 under %+v", last, lease)
		}
		// A no-op under the same lease writes nothing.
		rv := d.ResourceVersion
		if err := p.Scale(ctx, 4, lease, kubeDecision(4, 4)); err != nil {
			t.Fatal(err)
		}
		if d2, _ := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); d2.ResourceVersion != rv {
			t.Errorf("a no-op Scale wrote the object (resourceVersion %s -> %s)", rv, d2.ResourceVersion)
		}
	})

	t.Run("StatefulSet", func(t *testing.T) {
		replicas := int32(2)
		_, err := cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Spec: appsv1.StatefulSetSpec{
				Replicas:    &replicas,
				ServiceName: "db",
				Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template:    kubePodTemplate,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := kubeProvider(t, c.AdminKubeconfig, ns+"/sts/db")
		if err := p.Check(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Scale(ctx, 5, fence.Lease{Holder: "n", Term: 1}, kubeDecision(2, 5)); err != nil {
			t.Fatal(err)
		}
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *s.Spec.Replicas != 5 || s.Annotations[KubernetesAnnotationTerm] != "1" {
			t.Errorf("StatefulSet replicas %d, annotations %v", *s.Spec.Replicas, s.Annotations)
		}
	})

	t.Run("ReadyCount", func(t *testing.T) {
		// No kubelet or controller here: the Deployment's status is set by
		// hand, as the deployment controller would from its pods.
		kubeDeployment(t, cs, ns, "ready", 3)
		p := kubeProvider(t, c.AdminKubeconfig, ns+"/deployment/ready")
		got, err := p.Counts(ctx)
		if err != nil || got.Current != 3 || !got.ReadyKnown || got.Ready != 0 {
			t.Fatalf("no status yet: %+v %v; want 3 asked for, 0 ready (absent means none)", got, err)
		}
		if err := p.Scale(ctx, 5, fence.Lease{Holder: "n", Term: 1}, kubeDecision(3, 5)); err != nil {
			t.Fatal(err)
		}
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "ready", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status.Replicas, d.Status.ReadyReplicas, d.Status.ObservedGeneration = 5, 3, d.Generation
		if _, err := cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err = p.Counts(ctx)
		if err != nil || got != (scale.Counts{Current: 5, Ready: 3, ReadyKnown: true}) {
			t.Fatalf("5 asked for, 3 ready: got %+v %v", got, err)
		}
		if n, err := p.Current(ctx); err != nil || n != 5 {
			t.Fatalf("Current %d %v: the count asked for", n, err)
		}
	})

	t.Run("LowerTermRefused", func(t *testing.T) {
		kubeDeployment(t, cs, ns, "fenced", 2)
		res := ns + "/deployment/fenced"
		newer := kubeProvider(t, c.AdminKubeconfig, res)
		if err := newer.Scale(ctx, 3, fence.Lease{Holder: "node-b", Priority: 1, Term: 5}, kubeDecision(2, 3)); err != nil {
			t.Fatal(err)
		}
		// A deposed coordinator in another process: it has never seen term
		// 5 itself; the annotation on the object fences it.
		deposed := kubeProvider(t, c.AdminKubeconfig, res)
		err := deposed.Scale(ctx, 6, fence.Lease{Holder: "node-a", Priority: 1, Term: 4}, kubeDecision(3, 6))
		if !errors.Is(err, fence.ErrStaleTerm) {
			t.Fatalf("term 4 after term 5: err = %v, want ErrStaleTerm", err)
		}
		if !strings.Contains(err.Error(), "Deployment "+res[:len(ns)]+"/fenced") {
			t.Errorf("error does not name the object: %v", err)
		}
		t.Logf("refused as expected: %v", err)
		// Same term number, lower-ranked holder: a conflict, refused too.
		err = deposed.Scale(ctx, 6, fence.Lease{Holder: "node-a", Priority: 0, Term: 5}, kubeDecision(3, 6))
		if !errors.Is(err, fence.ErrTermConflict) {
			t.Fatalf("same term, lower rank: err = %v, want ErrTermConflict", err)
		}
		if got := kubeReplicas(t, cs, ns, "fenced"); got != 3 {
			t.Fatalf("replicas = %d after refused calls, want 3", got)
		}
		// The provider's own memory fences too, even if the annotation is
		// edited away by hand.
		d, _ := cs.AppsV1().Deployments(ns).Get(ctx, "fenced", metav1.GetOptions{})
		delete(d.Annotations, KubernetesAnnotationTerm)
		if _, err := cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := newer.Scale(ctx, 1, fence.Lease{Holder: "node-a", Term: 4}, kubeDecision(3, 1)); !errors.Is(err, fence.ErrStaleTerm) {
			t.Fatalf("in-memory fence: err = %v, want ErrStaleTerm", err)
		}
		// A higher term goes through and is recorded.
		if err := deposed.Scale(ctx, 1, fence.Lease{Holder: "node-a", Term: 6}, kubeDecision(3, 1)); err != nil {
			t.Fatal(err)
		}
		if got := kubeReplicas(t, cs, ns, "fenced"); got != 1 {
			t.Fatalf("replicas = %d, want 1", got)
		}
		if l, err := newer.Lease(ctx); err != nil || l.Term != 6 || l.Holder != "node-a" {
			t.Fatalf("Lease = %+v, %v", l, err)
		}
	})

	t.Run("ConflictingWriters", func(t *testing.T) {
		// Two coordinators' providers compute from the same old count:
		// one wins, the other re-reads and is told to decide again.
		kubeDeployment(t, cs, ns, "race", 2)
		res := ns + "/deployment/race"
		lease := fence.Lease{Holder: "node-a", Term: 7}
		p1, p2 := kubeProvider(t, c.AdminKubeconfig, res), kubeProvider(t, c.AdminKubeconfig, res)
		c1, _ := p1.Current(ctx)
		c2, _ := p2.Current(ctx)
		if c1 != 2 || c2 != 2 {
			t.Fatalf("Current = %d, %d", c1, c2)
		}
		if err := p1.Scale(ctx, 4, lease, kubeDecision(c1, 4)); err != nil {
			t.Fatal(err)
		}
		err := p2.Scale(ctx, 3, lease, kubeDecision(c2, 3))
		if !errors.Is(err, providers.ErrScaleConflict) {
			t.Fatalf("second writer from the same old count: err = %v, want providers.ErrScaleConflict", err)
		}
		t.Logf("loser: %v", err)
		if got := kubeReplicas(t, cs, ns, "race"); got != 4 {
			t.Fatalf("replicas = %d, want the winner's 4", got)
		}
		// The loser re-reads and decides again.
		c2, _ = p2.Current(ctx)
		if err := p2.Scale(ctx, c2+1, lease, kubeDecision(c2, c2+1)); err != nil {
			t.Fatal(err)
		}
		if got := kubeReplicas(t, cs, ns, "race"); got != 5 {
			t.Fatalf("replicas = %d, want 5", got)
		}
	})

	t.Run("ConcurrentWritersSameOldCount", func(t *testing.T) {
		// Eight writers race from the same count at once: exactly one
		// change lands; every other gets providers.ErrScaleConflict.
		kubeDeployment(t, cs, ns, "stampede", 1)
		res := ns + "/deployment/stampede"
		const n = 8
		ps := make([]*Kubernetes, n)
		for i := range ps {
			ps[i] = kubeProvider(t, c.AdminKubeconfig, res)
		}
		lease := fence.Lease{Holder: "node-a", Term: 1}
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range ps {
			wg.Go(func() {
				<-start
				errs[i] = ps[i].Scale(ctx, 2+i, lease, kubeDecision(1, 2+i))
			})
		}
		close(start)
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatalf("writers %d and %d both applied a change computed from 1 replica", won, i)
				}
				won = i
			case !errors.Is(err, providers.ErrScaleConflict):
				t.Fatalf("writer %d: %v", i, err)
			}
		}
		if won < 0 {
			t.Fatalf("no writer won: %v", errs)
		}
		if got := kubeReplicas(t, cs, ns, "stampede"); got != 2+won {
			t.Fatalf("replicas = %d, want the winner's %d", got, 2+won)
		}
	})

	t.Run("ConcurrentReDecide", func(t *testing.T) {
		// With ScaleFunc the provider re-decides itself after a conflict:
		// eight concurrent "+1"s, no lost update.
		kubeDeployment(t, cs, ns, "incr", 1)
		res := ns + "/deployment/incr"
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			p := kubeProvider(t, c.AdminKubeconfig, res)
			p.cfg.ConflictRetries = 50
			wg.Go(func() {
				errs[i] = p.ScaleFunc(ctx, fence.Lease{Holder: "node-a", Term: 1}, "incr",
					func(cur int) (int, error) { return cur + 1, nil })
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}
		if got := kubeReplicas(t, cs, ns, "incr"); got != 1+n {
			t.Fatalf("replicas = %d after %d concurrent +1 from 1, want %d", got, n, 1+n)
		}
	})

	t.Run("ConflictBetweenReadAndWrite", func(t *testing.T) {
		// Deterministic interleavings through the test hook: another
		// writer changes the object between our read and each of our
		// two writes.
		kubeDeployment(t, cs, ns, "hooked", 2)
		res := ns + "/deployment/hooked"
		p := kubeProvider(t, c.AdminKubeconfig, res)
		lease := fence.Lease{Holder: "node-a", Term: 1}
		touch := func() { // an unrelated change: a label
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "hooked", metav1.GetOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			if d.Labels == nil {
				d.Labels = map[string]string{}
			}
			d.Labels["touched"] = time.Now().Format("150405.000000")
			if _, err := cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
				t.Error(err)
			}
		}
		for _, stage := range []string{"before-patch", "before-update-scale"} {
			calls := map[string]int{}
			p.testHook = func(s string) {
				calls[s]++
				if s == stage && calls[s] == 1 {
					touch()
				}
			}
			cur := kubeReplicas(t, cs, ns, "hooked")
			if err := p.Scale(ctx, cur+1, lease, kubeDecision(cur, cur+1)); err != nil {
				t.Fatalf("%s: an unrelated change in between should be retried: %v", stage, err)
			}
			if calls[stage] != 2 {
				t.Errorf("%s: hook calls %v, want a retry", stage, calls)
			}
			if got := kubeReplicas(t, cs, ns, "hooked"); got != cur+1 {
				t.Fatalf("%s: replicas %d, want %d", stage, got, cur+1)
			}
		}
		// Another writer scales between our annotation write and our
		// scale write: our update is refused by the resourceVersion, the
		// re-read finds another count, and nothing stale is applied.
		p.testHook = func(s string) {
			if s == "before-update-scale" {
				p.testHook = nil
				sc, err := cs.AppsV1().Deployments(ns).GetScale(ctx, "hooked", metav1.GetOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				sc.Spec.Replicas = 10
				if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "hooked", sc, metav1.UpdateOptions{}); err != nil {
					t.Error(err)
				}
			}
		}
		cur := kubeReplicas(t, cs, ns, "hooked")
		err := p.Scale(ctx, cur+1, lease, kubeDecision(cur, cur+1))
		if !errors.Is(err, providers.ErrScaleConflict) {
			t.Fatalf("err = %v, want providers.ErrScaleConflict", err)
		}
		if got := kubeReplicas(t, cs, ns, "hooked"); got != 10 {
			t.Fatalf("replicas = %d, want the other writer's 10", got)
		}
	})

	t.Run("MissingDeployment", func(t *testing.T) {
		p := kubeProvider(t, c.AdminKubeconfig, ns+"/deployment/nope")
		_, err := p.Current(ctx)
		want := "Deployment " + ns + "/nope not found"
		if err == nil || !strings.Contains(err.Error(), want) || !apierrors.IsNotFound(err) {
			t.Fatalf("Current: err = %v, want %q (and IsNotFound)", err, want)
		}
		t.Logf("Current: %v", err)
		if err := p.Check(ctx); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Check: err = %v", err)
		}
		err = p.Scale(ctx, 3, fence.Lease{Holder: "a", Term: 1}, kubeDecision(1, 3))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Scale: err = %v", err)
		}
		if _, _, err := p.LastAction(ctx); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("LastAction: err = %v", err)
		}
		// A namespace that does not exist reads the same way.
		p = kubeProvider(t, c.AdminKubeconfig, "no-such-ns/statefulset/db")
		if _, err := p.Current(ctx); err == nil || !strings.Contains(err.Error(), "StatefulSet no-such-ns/db not found") {
			t.Fatalf("Current: err = %v", err)
		}
	})

	t.Run("BadAnnotation", func(t *testing.T) {
		kubeDeployment(t, cs, ns, "garbled", 1)
		d, _ := cs.AppsV1().Deployments(ns).Get(ctx, "garbled", metav1.GetOptions{})
		d.Annotations = map[string]string{KubernetesAnnotationTerm: "seven"}
		if _, err := cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := kubeProvider(t, c.AdminKubeconfig, ns+"/deployment/garbled")
		err := p.Scale(ctx, 2, fence.Lease{Holder: "a", Term: 100}, kubeDecision(1, 2))
		if err == nil || !strings.Contains(err.Error(), `shoal.io/term="seven"`) {
			t.Fatalf("err = %v, want a refusal naming the annotation", err)
		}
	})

	t.Run("UnreachableAPIServer", func(t *testing.T) {
		// A kubeconfig that parses but points at a closed port.
		b, err := os.ReadFile(c.AdminKubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(bad, []byte(strings.Replace(string(b), c.URL, "https://127.0.0.1:1", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		p := kubeProvider(t, bad, ns+"/deployment/web")
		_, err = p.Current(ctx)
		if err == nil || !strings.Contains(err.Error(), "Deployment "+ns+"/web") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestKubernetesForbidden(t *testing.T) {
	c := k8stest.Start(t, k8stest.Options{RBAC: true, Users: []k8stest.User{
		{Name: "limited"}, // may read and patch, not update the scale
		{Name: "scaler"},  // the Role the provider documents
		{Name: "nobody"},  // no binding at all
	}})
	cs := kubeAdmin(t, c)
	ctx := context.Background()
	ns := kubeNamespace(t, cs, "shoal-rbac")
	kubeDeployment(t, cs, ns, "web", 1)

	role := func(name string, rules ...rbacv1.PolicyRule) {
		if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: name}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	role("limited",
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "patch"}},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get"}},
	)
	role("scaler",
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "patch"}},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update"}},
	)
	obj := "Deployment " + ns + "/web"
	lease := fence.Lease{Holder: "node-a", Term: 1}

	// RBAC takes a moment to see new bindings: poll.
	limited := kubeProvider(t, c.Kubeconfig("limited"), ns+"/deployment/web")
	kubeEventually(t, func() error { _, err := limited.Current(ctx); return err })
	err := limited.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), obj) || !strings.Contains(err.Error(), "update apps deployments/scale") {
		t.Fatalf("Check: err = %v, want a refusal naming %s and update on deployments/scale", err, obj)
	}
	t.Logf("Check: %v", err)
	err = limited.Scale(ctx, 3, lease, kubeDecision(1, 3))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "forbidden to update the scale of "+obj) {
		t.Fatalf("Scale: err = %v, want forbidden naming %s", err, obj)
	}
	t.Logf("Scale: %v", err)
	if got := kubeReplicas(t, cs, ns, "web"); got != 1 {
		t.Fatalf("replicas = %d after a forbidden Scale", got)
	}

	nobody := kubeProvider(t, c.Kubeconfig("nobody"), ns+"/deployment/web")
	if _, err := nobody.Current(ctx); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), obj) {
		t.Fatalf("Current as an unbound user: err = %v", err)
	}

	// The documented Role is enough.
	scaler := kubeProvider(t, c.Kubeconfig("scaler"), ns+"/deployment/web")
	kubeEventually(t, func() error { return scaler.Check(ctx) })
	if err := scaler.Scale(ctx, 3, lease, kubeDecision(1, 3)); err != nil {
		t.Fatal(err)
	}
	if got := kubeReplicas(t, cs, ns, "web"); got != 3 {
		t.Fatalf("replicas = %d, want 3", got)
	}
}

func kubeEventually(t *testing.T, f func() error) {
	t.Helper()
	poll.Until(t, 20*time.Second, "kubernetes condition", f)
}

// Configuration errors need no cluster. They are asked for as the agent
// asks, through the helper process: the agent's start fails with them.
func TestKubernetesConfigErrors(t *testing.T) {
	useHelper(t)
	missing := filepath.Join(t.TempDir(), "no-such-kubeconfig")
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("this: is: not: a kubeconfig\n\t-"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	for _, c := range []struct {
		name     string
		resource string
		opts     map[string]string
		want     string
	}{
		{"missing kubeconfig", "default/deployment/web", map[string]string{"kubeconfig": missing}, `kubeconfig "` + missing + `"`},
		{"garbage kubeconfig", "default/deployment/web", map[string]string{"kubeconfig": garbage}, `kubeconfig "` + garbage + `"`},
		{"not in a cluster", "default/deployment/web", nil, "not in a cluster"},
		{"bad kind", "default/daemonset/web", map[string]string{"kubeconfig": missing}, `kind "daemonset"`},
		{"bad resource", "web", nil, `resource "web"`},
		{"no name", "default/deployment/", map[string]string{"kubeconfig": missing}, "no Deployment name"},
		{"unknown option", "default/deployment/web", map[string]string{"kubecfg": "x"}, `unknown option "kubecfg"`},
		{"bad timeout", "default/deployment/web", map[string]string{"timeout": "soon"}, `timeout "soon"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := scale.NewProvider(scale.ProviderConfig{Name: "kubernetes", Resource: c.resource, Options: c.opts})
			if !errors.Is(err, scale.ErrProviderConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want scale.ErrProviderConfig mentioning %q", err, c.want)
			}
		})
	}
}

// kubeManifests reads deploy/kubernetes/*.yaml (nil if there are none).
func kubeManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "deploy", "kubernetes", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("..", "..", "..", "deploy", "kubernetes", "*.yml"))
	files = append(files, more...)
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(b)), 4096)
		for {
			var raw map[string]any
			if err := dec.Decode(&raw); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if len(raw) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(raw)}
			if u.GetKind() == "Kustomization" { // kubectl's, not the apiserver's
				continue
			}
			u.SetAnnotations(mergeMaps(u.GetAnnotations(), map[string]string{"shoal.test/file": filepath.Base(f)}))
			objs = append(objs, u)
		}
	}
	return objs
}

// kubeApply applies u server-side (a dry run unless real), with the
// namespaces it needs created for real first.
type kubeApplier struct {
	cs     kubernetes.Interface
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newKubeApplier(t *testing.T, kubeconfig string) *kubeApplier {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	return &kubeApplier{
		cs:     cs,
		dyn:    dynamic.NewForConfigOrDie(rc),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery())),
	}
}

func (a *kubeApplier) apply(t *testing.T, u *unstructured.Unstructured, real bool) error {
	t.Helper()
	if ns := u.GetNamespace(); ns != "" {
		kubeNamespace(t, a.cs, ns)
	}
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == "namespace" {
		ns := u.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ri = a.dyn.Resource(m.Resource).Namespace(ns)
	}
	opts := metav1.ApplyOptions{FieldManager: "shoal-test", Force: true}
	if !real {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Apply(context.Background(), u.GetName(), u, opts)
	return err
}

// The manifests in deploy/kubernetes must be accepted by a real apiserver
// (server-side dry-run apply), RBAC objects included.
func TestKubernetesDeployManifestsDryRun(t *testing.T) {
	objs := kubeManifests(t)
	if len(objs) == 0 {
		t.Fatal("no objects in deploy/kubernetes/*.yaml; nothing to dry-run")
	}
	c := k8stest.Start(t, k8stest.Options{RBAC: true})
	a := newKubeApplier(t, c.AdminKubeconfig)
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			kubeNamespace(t, a.cs, u.GetName()) // a dry-run Namespace is not there for the rest
		}
	}
	for _, u := range objs {
		where := fmt.Sprintf("%s: %s %s", u.GetAnnotations()["shoal.test/file"], u.GetKind(), u.GetName())
		if err := a.apply(t, u, false); err != nil {
			t.Errorf("%s: server-side dry-run apply: %v", where, err)
			continue
		}
		t.Logf("dry-run apply ok: %s", where)
	}
}

// The Role in deploy/kubernetes, applied for real and used through the
// ServiceAccount's own token, must let the provider do its work.
func TestKubernetesDeployRBACForReal(t *testing.T) {
	var rbacObjs []*unstructured.Unstructured
	for _, u := range kubeManifests(t) {
		switch u.GetKind() {
		case "Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			rbacObjs = append(rbacObjs, u)
		}
	}
	var sa *unstructured.Unstructured
	for _, u := range rbacObjs {
		if u.GetKind() == "ServiceAccount" {
			sa = u
		}
	}
	if sa == nil {
		t.Fatal("no ServiceAccount in deploy/kubernetes/*.yaml")
	}
	c := k8stest.Start(t, k8stest.Options{RBAC: true})
	a := newKubeApplier(t, c.AdminKubeconfig)
	for _, u := range rbacObjs {
		if err := a.apply(t, u, true); err != nil {
			t.Fatalf("%s %s: apply: %v", u.GetKind(), u.GetName(), err)
		}
	}
	ctx := context.Background()
	ns := sa.GetNamespace()
	kubeDeployment(t, a.cs, ns, "web", 1)
	tok, err := a.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.GetName(), &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewKubernetes(KubernetesConfig{
		Kind: "Deployment", Namespace: ns, Name: "web",
		REST: &rest.Config{Host: c.URL, BearerToken: tok.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile}},
	})
	if err != nil {
		t.Fatal(err)
	}
	who := "system:serviceaccount:" + ns + ":" + sa.GetName()
	// RBAC takes a moment to see new bindings: poll Current first.
	kubeEventually(t, func() error { _, err := p.Current(ctx); return err })
	if err := p.Check(ctx); err != nil {
		t.Fatalf("as %s with deploy/kubernetes' RBAC: %v\n"+
			"deploy/kubernetes/rbac.yaml must also grant get, patch on deployments and statefulsets (apps): "+
			"the provider keeps its fencing term in annotations on the object (shoal.io/term)", who, err)
	}
	if err := p.Scale(ctx, 2, fence.Lease{Holder: "node-a", Term: 1}, kubeDecision(1, 2)); err != nil {
		t.Fatalf("as %s with deploy/kubernetes' RBAC: %v", who, err)
	}
	if got := kubeReplicas(t, a.cs, ns, "web"); got != 2 {
		t.Fatalf("replicas = %d, want 2", got)
	}
}

func ptrTo[T any](v T) *T { return &v }

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
