//! A load's verdict as JUnit XML, for CI systems that show test results: one testcase for
//! each thing [`LoadReport::passed`] asks, failed with what the report counted, one for each
//! rule a judged load's calls broke, and one for each threshold.

use super::{load::LoadReport, report::escape};

/// A testcase: its class, its name, and its failure's message and detail when it failed.
type Case<'a> = (&'a str, String, Option<(String, String)>);

impl LoadReport {
    /// The report as JUnit XML: whether every call connected, every frame came back intact,
    /// and the load's own threads held.
    pub fn to_junit(&self) -> String {
        let cases = self.junit_cases();
        let failures = cases.iter().filter(|(_, _, f)| f.is_some()).count();
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vonage-echo load {} calls\" tests=\"{}\" failures=\"{failures}\" skipped=\"0\" errors=\"0\" time=\"{:.3}\">\n",
            self.load.calls,
            cases.len(),
            self.elapsed_seconds
        );
        for (class, name, failure) in &cases {
            xml.push_str(&format!(
                "<testcase classname=\"{class}\" name=\"{}\">",
                escape(name)
            ));
            if let Some((message, detail)) = failure {
                xml.push_str(&format!(
                    "<failure message=\"{}\">{}</failure>",
                    escape(message),
                    escape(detail)
                ));
            }
            xml.push_str("</testcase>\n");
        }
        xml.push_str("</testsuite>\n</testsuites>\n");
        xml
    }

    /// The testcases: the load's own three, then each rule a judged load's calls broke,
    /// then each threshold.
    fn junit_cases(&self) -> Vec<Case<'static>> {
        let failed_calls = self.failed_calls();
        let reasons: Vec<String> = self
            .failed
            .iter()
            .map(|(reason, n)| format!("{n} x {reason}"))
            .collect();
        let mut cases: Vec<Case> = vec![
            (
                "load",
                "every call connected and streamed to its end".into(),
                (failed_calls > 0).then(|| {
                    (
                        format!("{failed_calls} of {} calls failed", self.attempted),
                        reasons.join("\n"),
                    )
                }),
            ),
            (
                "load",
                "every frame echoed intact and in order".into(),
                (self.frames_lost + self.frames_corrupted > 0).then(|| {
                    let what = format!(
                        "{} lost, {} corrupted of {} frames sent",
                        self.frames_lost, self.frames_corrupted, self.frames_sent
                    );
                    (what.clone(), what)
                }),
            ),
            (
                "load",
                "the load's own threads ran to their end".into(),
                (!self.helpers_died.is_empty()).then(|| {
                    let what = self.helpers_died.join("\n");
                    (what.clone(), what)
                }),
            ),
        ];
        // A judged load: each rule its calls broke, with how many and an example.
        if let Some(judged) = &self.judged {
            for (rule, broken) in &judged.rules {
                let text = format!(
                    "{} of {} calls broke it, e.g. {}",
                    broken.calls, judged.calls, broken.example
                );
                cases.push(("rules", rule.clone(), Some((text.clone(), text))));
            }
        }
        for verdict in &self.thresholds {
            let text = format!("measured {}", verdict.measured);
            let failure = (!verdict.met).then(|| (text.clone(), text));
            cases.push(("thresholds", verdict.threshold.clone(), failure));
        }
        cases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_s_junit_fails_the_testcase_of_what_went_wrong_only() {
        let mut report = LoadReport {
            attempted: 10,
            frames_sent: 100,
            ..LoadReport::default()
        };
        report.failed.insert("dial: refused <503>".into(), 2);
        let xml = report.to_junit();
        assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(
            xml.contains(
                "<failure message=\"2 of 10 calls failed\">2 x dial: refused &lt;503&gt;</failure>"
            ),
            "{xml}"
        );
        let passed = LoadReport::default().to_junit();
        assert!(passed.contains("failures=\"0\"") && !passed.contains("<failure"));
    }
}
