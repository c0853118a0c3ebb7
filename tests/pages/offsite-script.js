// Loaded from the refused origin by offsite-embeds.html: a subresource, which allowed_domains lets through.
window.offsiteScript = "loaded";
