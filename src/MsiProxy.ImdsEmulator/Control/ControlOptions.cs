namespace MsiProxy.ImdsEmulator.Control;

/// <summary>The control API's own listener; off unless Urls is set. Never served on the IMDS port.</summary>
public sealed class ControlOptions
{
    /// <summary>Semicolon-separated URLs, e.g. http://127.0.0.1:5081.</summary>
    public string? Urls { get; set; }
}
