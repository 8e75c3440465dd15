import Testing
import TriplineCore
import TriplineYAML

func ruleErrors(_ yaml: String) -> [String] {
    switch YAMLDocument.parse(yaml, file: "rules.yaml") {
    case .failure(let e): return e.errors.map(\.description)
    case .success(let doc):
        switch RuleCodec.decode(doc, file: "rules.yaml") {
        case .failure(let e): return e.errors.map(\.description)
        case .success: return []
        }
    }
}

@Suite struct RuleLabelTests {
    let head = "rules:\n  - {id: hot, kind: threshold, purpose: p, owner: o, severity: high, match: {}, metric: temp_c, above: 8, "

    @Test func labelsAndAnnotationsLoadAndRoundTrip() throws {
        let yaml = head + "labels: {team: cold-chain, site_code: r7}, annotations: {summary: '{{entity}} at {{details.value}}', runbook_url: 'https://x/rb'}}"
        let doc = try YAMLDocument.parse(yaml, file: "rules.yaml").get()
        let rules = try RuleCodec.decode(doc, file: "rules.yaml").get()
        #expect(rules[0].labels == ["team": "cold-chain", "site_code": "r7"])
        #expect(rules[0].annotations == ["summary": "{{entity}} at {{details.value}}", "runbook_url": "https://x/rb"])
        let back = try RuleCodec.decodeJSON(RuleEncoder.file(rules), file: "enc.json").get()
        #expect(back == rules.map { var r = $0; r.line = back[0].line; return r })
    }

    @Test func refusedLabelsNameTheFieldAndSayWhy() {
        let cases: [(String, String)] = [
            ("labels: {religion: x}", "rules.yaml:2:126 at /rules/0/labels/religion: label \"religion\" is a sensitive category and is refused"),
            ("labels: {zone: x}", "at /rules/0/labels/zone: label \"zone\" is built in"),
            ("labels: {2team: x}", "at /rules/0/labels/2team: label name \"2team\" is not valid"),
            ("labels: {team: ''}", "at /rules/0/labels/team: label \"team\" is empty"),
            ("labels: {team: 8}", "at /rules/0/labels/team: label \"team\" must be a string"),
            ("labels: [team]", "at /rules/0/labels: labels must be an object"),
            ("annotations: {summry: x}", "at /rules/0/annotations/summry: unknown field \"summry\" in annotations (did you mean \"summary\"?)"),
            ("annotations: {summary: '{{#a}}x{{/b}}'}", "at /rules/0/annotations/summary: annotation summary is not a valid template: sectionCloseNameIncorrect at line 1"),
        ]
        for (field, expected) in cases {
            let errs = ruleErrors(head + field + "}")
            #expect(errs.count == 1 && errs[0].contains(expected), "\(field): \(errs)")
        }
    }

    @Test func annotationsRenderAsPlainText() throws {
        let t = try AnnotationTemplate("{{entity}} <{{labels.team}}> at {{details.value}} °C{{#runbook}} see {{runbook}}{{/runbook}}")
        #expect(t.render(["entity": "reefer-1 & co", "labels": ["team": "cold"], "details": ["value": 9.5]]) == "reefer-1 & co <cold> at 9.5 °C")
    }
}
