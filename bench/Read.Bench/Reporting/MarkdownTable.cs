using System.Globalization;
using System.Text;
using CsvHelper;

namespace Read.Bench.Reporting;

/// <summary>A table printed as markdown (for docs/) and written as CSV (for plots and diffs).</summary>
internal sealed class MarkdownTable(params string[] columns)
{
    private readonly List<string[]> _rows = [];

    public void Add(params object?[] cells) =>
        _rows.Add(cells.Select(Format).ToArray());

    private static string Format(object? value) => value switch
    {
        null => "",
        double d when double.IsNaN(d) => "n/a",
        double d => d.ToString(Math.Abs(d) >= 100 ? "F0" : Math.Abs(d) >= 1 ? "F2" : Math.Abs(d) >= 0.01 || d == 0 ? "F3" : "G2", CultureInfo.InvariantCulture),
        float f => Format((double)f),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("| ").AppendJoin(" | ", columns).AppendLine(" |");
        sb.Append('|').AppendJoin("|", columns.Select(_ => "---")).AppendLine("|");
        foreach (var row in _rows)
            sb.Append("| ").AppendJoin(" | ", row).AppendLine(" |");
        return sb.ToString();
    }

    public string ToCsv()
    {
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        using (var csv = CsvWriter.Create(writer, new CsvWriterOptions(), false))
        {
            foreach (var row in _rows.Prepend(columns))
            {
                foreach (var cell in row)
                    csv.WriteField(cell);
                csv.EndRecord();
            }
            csv.Flush();
        }
        return writer.ToString();
    }
}
