//! Recognition of `<template type="amp-mustache">` regions in AMP HTML.
//!
//! AMP emails carry client-side mustache templates that use the same `{{ }}` braces as this
//! language. Their content is filled in by the mail client from `amp-list` data, so the
//! lexer must pass such regions through untouched instead of substituting (and blanking)
//! them at send time.

use std::ops::Range;

/// Finds `<template ... amp-mustache ...>...</template>` regions in one source.
pub(crate) struct AmpTemplates {
    /// ASCII-lowercased copy of the source; lowercasing keeps byte offsets unchanged.
    lower: String,
}

impl AmpTemplates {
    /// A finder for `source`, or `None` when the source cannot contain such a region.
    pub fn new(source: &str) -> Option<Self> {
        let lower = source.to_ascii_lowercase();
        lower
            .contains("amp-mustache")
            .then_some(AmpTemplates { lower })
    }

    /// The first region starting at or after byte `from`; it runs to the end of the source
    /// when the closing `</template>` is missing.
    pub fn next_region(&self, from: usize) -> Option<Range<usize>> {
        let mut search = from;
        loop {
            let start = search + self.lower.get(search..)?.find("<template")?;
            let open_end = start + self.lower.get(start..)?.find('>')? + 1;
            let opening_tag = self.lower.get(start..open_end)?;
            if is_template_element(opening_tag) && opening_tag.contains("amp-mustache") {
                let close = self.lower.get(open_end..)?.find("</template>");
                let end = close.map_or(self.lower.len(), |c| open_end + c + "</template>".len());
                return Some(start..end);
            }
            search = open_end;
        }
    }
}

/// True when the tag name is exactly `template` (not e.g. `<templates>`).
fn is_template_element(opening_tag: &str) -> bool {
    let after_name = opening_tag.as_bytes().get("<template".len()).copied();
    after_name.is_some_and(|b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(source: &str) -> Vec<&str> {
        let Some(finder) = AmpTemplates::new(source) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut from = 0;
        while let Some(region) = finder.next_region(from) {
            from = region.end;
            found.extend(source.get(region));
        }
        found
    }

    #[test]
    fn finds_mustache_templates_only() {
        let source = concat!(
            "<template type=\"other\">{{a}}</template>",
            "<TEMPLATE Type=\"amp-mustache\">{{b}}</Template>x",
            "<templates amp-mustache>{{c}}</templates>"
        );
        assert_eq!(
            regions(source),
            ["<TEMPLATE Type=\"amp-mustache\">{{b}}</Template>"]
        );
    }

    #[test]
    fn unclosed_region_runs_to_the_end() {
        let source = "a <template type='amp-mustache'>{{x}}";
        assert_eq!(regions(source), ["<template type='amp-mustache'>{{x}}"]);
    }

    #[test]
    fn sources_without_amp_need_no_scan() {
        assert!(AmpTemplates::new("<template>{{x}}</template>").is_none());
        assert!(regions("<template amp-mustache").is_empty());
    }
}
