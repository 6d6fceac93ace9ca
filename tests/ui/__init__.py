"""Browser tests of the approvers' console (/ui), driving Debian's chromium through Playwright."""
