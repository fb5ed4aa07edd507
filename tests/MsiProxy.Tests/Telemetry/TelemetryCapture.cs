using System.Diagnostics;
using System.Text;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace MsiProxy.Tests.Telemetry;

/// <summary>
/// Everything a proxy exports — spans, metrics and OpenTelemetry log records — captured in memory by exporters
/// added next to the product's own (<see cref="Configure"/> goes into ProxyHost's configureServices).
/// Spans and logs are exported as they end; metrics when <see cref="Flush"/> is called.
/// </summary>
public sealed class TelemetryCapture
{
    private readonly Lock _gate = new();
    private readonly List<Activity> _spans = [];
    private readonly List<ExportedLog> _logs = [];
    private readonly LockedCollection<MetricSnapshot> _metrics = new();

    public IReadOnlyList<Activity> Spans
    {
        get
        {
            lock (_gate)
            {
                return [.. _spans];
            }
        }
    }

    public IReadOnlyList<ExportedLog> Logs
    {
        get
        {
            lock (_gate)
            {
                return [.. _logs];
            }
        }
    }

    public void Configure(IServiceCollection services)
    {
        // Capturing spans is exporting them: record them all, as the proxy does when an OTLP exporter is configured.
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing
            .SetSampler(new ParentBasedSampler(new AlwaysOnSampler()))
            .AddProcessor(new SimpleActivityExportProcessor(new SpanExporter(this))));
        services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.AddInMemoryExporter(_metrics));
        services.ConfigureOpenTelemetryLoggerProvider(logging => logging.AddProcessor(new SimpleLogRecordExportProcessor(new LogExporter(this))));
    }

    /// <summary>Call with the proxy's services before reading metrics: collects the current values of every instrument.</summary>
    public void Flush(IServiceProvider services)
    {
        services.GetRequiredService<MeterProvider>().ForceFlush(5000);
    }

    /// <summary>The last collected state of a metric (exports are cumulative, so the last snapshot is the total).</summary>
    public MetricSnapshot? Metric(string name) => _metrics.Items.LastOrDefault(m => m.Name == name);

    public IReadOnlyList<string> MetricNames => _metrics.Items.Select(m => m.Name).Distinct().ToList();

    /// <summary>Sum of a counter over the points whose tags include every one of <paramref name="tags"/>.</summary>
    public long Sum(string name, params (string Key, object Value)[] tags) =>
        Points(name, tags).Sum(p => p.GetSumLong());

    public long HistogramCount(string name, params (string Key, object Value)[] tags) =>
        Points(name, tags).Sum(p => p.GetHistogramCount());

    public IEnumerable<MetricPoint> Points(string name, params (string Key, object Value)[] tags)
    {
        var metric = Metric(name);
        if (metric is null)
        {
            yield break;
        }

        foreach (var point in metric.MetricPoints)
        {
            var pointTags = new Dictionary<string, object?>();
            foreach (var tag in point.Tags)
            {
                pointTags[tag.Key] = tag.Value;
            }

            if (tags.All(t => pointTags.TryGetValue(t.Key, out var v) && Equals(Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture),
                Convert.ToString(t.Value, System.Globalization.CultureInfo.InvariantCulture))))
            {
                yield return point;
            }
        }
    }

    /// <summary>Every exported string — span names, attributes, events, links, status; metric names and tags; log messages, attributes and scopes.</summary>
    public string AllText()
    {
        var text = new StringBuilder();
        foreach (var span in Spans)
        {
            text.Append(span.DisplayName).Append(' ').Append(span.OperationName).Append(' ').Append(span.StatusDescription).Append(' ');
            foreach (var (key, value) in span.TagObjects)
            {
                text.Append(key).Append('=').Append(value).Append(' ');
            }

            foreach (var e in span.Events)
            {
                text.Append(e.Name).Append(' ');
                foreach (var (key, value) in e.Tags)
                {
                    text.Append(key).Append('=').Append(value).Append(' ');
                }
            }

            foreach (var (key, value) in span.Baggage)
            {
                text.Append(key).Append('=').Append(value).Append(' ');
            }

            text.AppendLine();
        }

        foreach (var metric in _metrics.Items)
        {
            text.Append(metric.Name).Append(' ').Append(metric.Description).Append(' ');
            foreach (var point in metric.MetricPoints)
            {
                foreach (var tag in point.Tags)
                {
                    text.Append(tag.Key).Append('=').Append(tag.Value).Append(' ');
                }
            }

            text.AppendLine();
        }

        foreach (var log in Logs)
        {
            text.AppendLine(log.Text);
        }

        return text.ToString();
    }

    /// <summary>What is kept of an OpenTelemetry log record (the SDK reuses LogRecord objects, so copy at export).</summary>
    public sealed record ExportedLog(string? Category, ActivityTraceId TraceId, ActivitySpanId SpanId, string Text);

    private sealed class SpanExporter(TelemetryCapture capture) : BaseExporter<Activity>
    {
        public override ExportResult Export(in Batch<Activity> batch)
        {
            lock (capture._gate)
            {
                foreach (var activity in batch)
                {
                    capture._spans.Add(activity);
                }
            }

            return ExportResult.Success;
        }
    }

    private sealed class LogExporter(TelemetryCapture capture) : BaseExporter<LogRecord>
    {
        public override ExportResult Export(in Batch<LogRecord> batch)
        {
            foreach (var record in batch)
            {
                var text = new StringBuilder();
                text.Append(record.CategoryName).Append(' ').Append(record.EventId.Name).Append(' ').Append(record.FormattedMessage)
                    .Append(' ').Append(record.Body).Append(' ').Append(record.Exception);
                foreach (var (key, value) in record.Attributes ?? [])
                {
                    text.Append(' ').Append(key).Append('=').Append(value);
                }

                record.ForEachScope<object?>((scope, _) =>
                {
                    foreach (var (key, value) in scope)
                    {
                        text.Append(" scope:").Append(key).Append('=').Append(value);
                    }
                }, null);
                lock (capture._gate)
                {
                    capture._logs.Add(new ExportedLog(record.CategoryName, record.TraceId, record.SpanId, text.ToString()));
                }
            }

            return ExportResult.Success;
        }
    }

    /// <summary>The metric reader exports on its own thread while a test reads: guard the list.</summary>
    private sealed class LockedCollection<T> : ICollection<T>
    {
        private readonly Lock _lock = new();
        private readonly List<T> _items = [];

        public IReadOnlyList<T> Items
        {
            get
            {
                lock (_lock)
                {
                    return [.. _items];
                }
            }
        }

        public int Count => Items.Count;
        public bool IsReadOnly => false;

        public void Add(T item)
        {
            lock (_lock)
            {
                _items.Add(item);
            }
        }

        public void Clear()
        {
            lock (_lock)
            {
                _items.Clear();
            }
        }

        public bool Contains(T item) => Items.Contains(item);
        public void CopyTo(T[] array, int arrayIndex) => Items.ToList().CopyTo(array, arrayIndex);
        public bool Remove(T item)
        {
            lock (_lock)
            {
                return _items.Remove(item);
            }
        }

        public IEnumerator<T> GetEnumerator() => Items.GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

/// <summary>
/// Telemetry tests read process-wide listeners (every TracerProvider and MeterProvider sees every "MsiProxy" source
/// and meter in the process), so they run alone, after the parallel tests, with no other proxy alive.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TelemetryTestGroup
{
    public const string Name = "Telemetry (not parallel)";
}
