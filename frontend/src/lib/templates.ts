// Starter specs for the editor. Programs report through $AIRLOCK_EVENTS (JSON lines).
export interface Template {
  id: string;
  label: string;
  text: string;
}

export const TEMPLATES: Template[] = [
  {
    id: "hello",
    label: "Hello: three tasks, a score each",
    text: `# Three tasks, two epochs each. The program reads its task input,
# prints a line and reports a score through $AIRLOCK_EVENTS.
name: hello
image: python:3.12-slim
command:
  - sh
  - -c
  - |
    echo "task $AIRLOCK_TASK_ID, epoch $AIRLOCK_EPOCH, input: $(cat "$AIRLOCK_TASK_INPUT")"
    echo '{"type":"progress","fraction":0.5,"message":"halfway"}' >> "$AIRLOCK_EVENTS"
    echo '{"type":"score","name":"accuracy","value":1}' >> "$AIRLOCK_EVENTS"
tasks:
  - id: easy
    input: {question: "2+2", answer: 4}
  - id: medium
    input: {question: "17*3", answer: 51}
  - id: hard
    input: {question: "2^10", answer: 1024}
epochs: 2
resources: {cpu: 500m, memory: 256Mi}
timeout: 1m
labels: {suite: hello}
`,
  },
  {
    id: "graded",
    label: "Graded: scores that vary by task and epoch",
    text: `# Ten tasks x three epochs; each run reports two scores that differ by task and epoch,
# so the evaluation page shows a distribution per score.
name: graded
image: python:3.12-slim
command:
  - sh
  - -c
  - |
    n=$(echo "$AIRLOCK_TASK_ID" | tr -dc 0-9)
    score=$(awk -v n="$n" -v e="$AIRLOCK_EPOCH" 'BEGIN { printf "%.3f", ((n * 7 + e * 3) % 10) / 10 }')
    echo "grading task $AIRLOCK_TASK_ID (epoch $AIRLOCK_EPOCH): $score"
    echo "{\\"type\\":\\"score\\",\\"name\\":\\"accuracy\\",\\"value\\":$score}" >> "$AIRLOCK_EVENTS"
    echo "{\\"type\\":\\"score\\",\\"name\\":\\"steps\\",\\"value\\":$((n + AIRLOCK_EPOCH))}" >> "$AIRLOCK_EVENTS"
tasks:
  - {id: t1, input: 1}
  - {id: t2, input: 2}
  - {id: t3, input: 3}
  - {id: t4, input: 4}
  - {id: t5, input: 5}
  - {id: t6, input: 6}
  - {id: t7, input: 7}
  - {id: t8, input: 8}
  - {id: t9, input: 9}
  - {id: t10, input: 10}
epochs: 3
resources: {cpu: 500m, memory: 256Mi}
timeout: 5m
labels: {suite: graded}
`,
  },
  {
    id: "progress",
    label: "Long run: progress and a steady log",
    text: `# One run that works for about a minute, logging and reporting progress as it goes.
name: long-run
image: python:3.12-slim
command:
  - sh
  - -c
  - |
    for i in $(seq 1 60); do
      echo "step $i of 60"
      [ $((i % 10)) -eq 0 ] && echo "checkpoint $i" >&2
      echo "{\\"type\\":\\"progress\\",\\"fraction\\":$(awk -v i=$i 'BEGIN { print i / 60 }'),\\"message\\":\\"step $i\\"}" >> "$AIRLOCK_EVENTS"
      sleep 1
    done
    echo '{"type":"score","name":"reward","value":0.37}' >> "$AIRLOCK_EVENTS"
tasks:
  - id: marathon
    input: {}
resources: {cpu: "1", memory: 512Mi}
timeout: 10m
priority: low
`,
  },
];
