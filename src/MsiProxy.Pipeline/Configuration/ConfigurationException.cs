namespace MsiProxy.Configuration;

/// <summary>
/// The proxy's own configuration is wrong: the message names the key (or file) and the value. Start-up turns this —
/// and options validation failures — into exit code 2 with the message; every other exception is a failure, not a
/// configuration error, and keeps its own exit code and stack trace.
/// </summary>
public sealed class ConfigurationException : Exception
{
    public ConfigurationException(string message)
        : base(message)
    {
    }

    public ConfigurationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
