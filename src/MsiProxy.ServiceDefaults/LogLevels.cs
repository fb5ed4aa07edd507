using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace MsiProxy.ServiceDefaults;

/// <summary>
/// The Serilog settings read from configuration, as Serilog.Settings.Configuration spells them:
/// <c>Serilog:MinimumLevel</c> (a level, or <c>Default</c> and <c>Override:&lt;category prefix&gt;</c>) and
/// <c>Serilog:Properties:&lt;name&gt;</c>. Read here rather than by that package's reader, which finds the methods of
/// every setting by reflection (it cannot be trimmed or compiled ahead of time) and costs start-up for the two
/// sections the proxy uses; the sinks are ours, in code.
/// </summary>
/// <remarks>
/// As with Serilog's reader, a level that is present at start-up follows a configuration reload (a level switch per
/// setting); an override added later takes effect at the next start. A bad level stops start-up (exit 2); a bad level
/// in a reload keeps the level in force, and says so in a warning naming the key and the value.
/// </remarks>
internal static class LogLevels
{
    public const string Section = "Serilog";

    /// <summary>The category of what the logging set-up itself has to say (a reloaded level refused).</summary>
    public const string Category = "MsiProxy.Logging";

    private const string MinimumLevel = Section + ":MinimumLevel";

    /// <summary>The configured levels and properties, over the levels set before this.</summary>
    /// <param name="refusedReload">Told of a reloaded level that is not one (the key, the value, the level kept).</param>
    /// <exception cref="OptionsValidationException">A level is not one of Serilog's level names.</exception>
    public static LoggerConfiguration WithConfiguredLevels(this LoggerConfiguration logger, IConfiguration configuration,
        Action<string, string?, LogEventLevel> refusedReload)
    {
        var minimum = configuration.GetSection(MinimumLevel);
        if (DefaultLevel(configuration, minimum) is { } fallback)
        {
            logger.MinimumLevel.ControlledBy(Switch(fallback, refusedReload));
        }

        foreach (var category in minimum.GetSection("Override").GetChildren())
        {
            if (category.Value is not null)
            {
                logger.MinimumLevel.Override(category.Key, Switch(category, refusedReload));
            }
        }

        foreach (var (name, value) in Properties(configuration))
        {
            logger.Enrich.WithProperty(name, value);
        }

        return logger;
    }

    /// <summary>The properties added to every event (<c>Serilog:Properties:&lt;name&gt;</c>), read once at start-up.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Properties(IConfiguration configuration) =>
        [.. configuration.GetSection(Section + ":Properties").GetChildren()
            .Where(p => p.Value is not null).Select(p => new KeyValuePair<string, string>(p.Key, p.Value!))];

    /// <summary>
    /// <c>Serilog:MinimumLevel</c> or <c>Serilog:MinimumLevel:Default</c>, whichever the latest source that sets either
    /// sets (as Serilog's reader chooses): a <c>Default</c> on the command line beats a plain level in an environment
    /// variable, and the other way round.
    /// </summary>
    private static IConfigurationSection? DefaultLevel(IConfiguration configuration, IConfigurationSection minimum)
    {
        var named = minimum.GetSection("Default");
        if (configuration is IConfigurationRoot root)
        {
            foreach (var provider in root.Providers.Reverse())
            {
                if (provider.TryGet(minimum.Path, out var plain) && !string.IsNullOrEmpty(plain))
                {
                    return minimum;
                }

                if (provider.TryGet(named.Path, out var value) && !string.IsNullOrEmpty(value))
                {
                    return named;
                }
            }
        }

        return !string.IsNullOrEmpty(minimum.Value) ? minimum : !string.IsNullOrEmpty(named.Value) ? named : null;
    }

    /// <summary>A switch at the setting's level that follows it through reloads.</summary>
    private static LoggingLevelSwitch Switch(IConfigurationSection setting, Action<string, string?, LogEventLevel> refusedReload)
    {
        var level = Parse(setting.Value) ?? throw new OptionsValidationException(setting.Path, typeof(LogLevels),
            [$"{setting.Path} = '{setting.Value}' must be one of {string.Join(", ", Enum.GetNames<LogEventLevel>())}"]);
        var levelSwitch = new LoggingLevelSwitch(level);
        ChangeToken.OnChange(setting.GetReloadToken, () =>
        {
            if (Parse(setting.Value) is { } reloaded)
            {
                levelSwitch.MinimumLevel = reloaded;
            }
            else
            {
                refusedReload(setting.Path, setting.Value, levelSwitch.MinimumLevel);
            }
        });
        return levelSwitch;
    }

    /// <summary>A level by name, any case; a number, or a list of names (which the enum parser would add up), is not.</summary>
    internal static LogEventLevel? Parse(string? value) =>
        value?.Trim() is { Length: > 0 } name && name.All(char.IsAsciiLetter) && Enum.TryParse<LogEventLevel>(name, ignoreCase: true, out var level)
            ? level
            : null;
}
