// Package browser is the dashboard's test in a real browser: headless
// Chromium (Debian's chromium package) driven from Go with chromedp. The
// tests sit behind the build tag "browser":
//
//	go test -tags browser -v ./tests/browser/    (or scripts/browser-test)
//
// TestDashboardFiveAgents starts five agent processes of the built binary on
// loopback with an API token, loads the page without the token, enters it,
// waits for five members with load, kills one agent (SIGKILL) and times how
// long the page takes to show it failed; it saves screenshots (desktop and
// phone-sized) under out/browser/ and prints their paths.
// TestDashboardThousandMembers serves 1,000 synthetic members (the agent's
// WithSyntheticMembers test hook) and prints the browser's timings of the
// first render, one update, a sort and a page change.
//
// Without Chromium the tests skip and say so; scripts/browser-test installs
// it with apt-get when it is missing.
package browser
