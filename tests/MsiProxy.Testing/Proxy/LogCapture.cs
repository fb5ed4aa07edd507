using System.Collections.Concurrent;
using System.Text;

namespace MsiProxy.Testing.Proxy;

/// <summary>Every log event the proxy wrote (category, level, message, structured values, exception), for assertions.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLog> _events = new();

    public IReadOnlyList<CapturedLog> Events => [.. _events];

    /// <summary>
    /// The events of <paramref name="category"/>, once there are at least <paramref name="count"/>: a request's log and
    /// audit lines are written as the exchange completes, which can be just after the client has read its answer.
    /// </summary>
    public async Task<IReadOnlyList<CapturedLog>> WaitForAsync(string category, int count, TimeSpan? within = null) =>
        await Waiting.Eventually(() => _events.Where(e => e.Category == category).ToList(), events => events.Count >= count, within,
            $"{count} event(s) of {category}", () => $"{_events.Count(e => e.Category == category)} so far").ConfigureAwait(false);

    /// <summary>Everything captured, as one text to search (e.g. for token strings that must never appear).</summary>
    public string AllText()
    {
        var text = new StringBuilder();
        foreach (var e in _events)
        {
            text.Append(e.Category).Append(' ').Append(e.EventId.Name).Append(' ').Append(e.Message).Append(' ');
            foreach (var (key, value) in e.State)
            {
                text.Append(key).Append('=').Append(value).Append(' ');
            }

            text.AppendLine(e.Exception);
        }

        return text.ToString();
    }

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _events);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<CapturedLog> events) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
                ? pairs.Select(p => new KeyValuePair<string, string?>(p.Key, p.Value?.ToString())).ToList()
                : [];
            events.Enqueue(new CapturedLog(category, logLevel, eventId, formatter(state, exception), values, exception?.ToString()));
        }
    }
}

public sealed record CapturedLog(string Category, LogLevel Level, EventId EventId, string Message,
    IReadOnlyList<KeyValuePair<string, string?>> State, string? Exception)
{
    public string? Value(string key) => State.FirstOrDefault(p => p.Key == key).Value;
}
