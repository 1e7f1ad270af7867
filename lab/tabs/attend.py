"""Attention and interventions: where each detection looks, an object moved into another image, a layer skipped."""

from __future__ import annotations

import math

import gradio as gr
from PIL import Image

from inversion.core.registry import ClassifierModel
from inversion.figures import CardPanel
from lab import attention_service, classifier_service, service, text
from lab.admission import MODEL_EVENT
from lab.cards import Card, annotated_panel, card_maker, gallery_panels, picture
from lab.components import (
    CONTROLS,
    PAGE_ONLY,
    SHOWN,
    annotated,
    as_file,
    change_rows,
    examples,
    gallery,
    image_input,
    pick_object,
    read_image,
    results_gallery,
    unannotated,
)
from lab.links import EXAMPLES_DIR, LinkState, example_model, example_name, to_query
from lab.tabs import Page, Tab

POINT_MAP_WIDTH = 640  # the encoder map is sent this wide: Gradio maps clicks wrongly on an image it enlarges
PLACEHOLDER_SIZE = (64, 64)  # a blank image where an action has no picture (cached examples cannot hold None)
MEAN_OF_HEADS = -1  # the head choice that averages them
TRANSPLANT_EXAMPLE = ("shapes_15.png", "shapes_05.png", 2)  # its star goes where shapes_05 has nothing: found there


def whole_number(value, name: str) -> int:
    """A setting sent as a number: whole and finite, else a message naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value != int(value):
        raise gr.Error(text.BAD_SETTING.format(name=name, value=value), print_exception=False)
    return int(value)


def chosen(value, choices, name: str):
    """A setting that must be one of `choices` (Gradio lets an API caller send anything)."""
    if value not in choices:
        raise gr.Error(text.BAD_CHOICE.format(name=name, choices=", ".join(map(str, choices)), value=value),
                       print_exception=False)
    return value


def skip_choices(model) -> list[str]:
    """The layers a layer skip can leave out: the layer swap's layers but the 0s (the input of the first layer); a
    classifier's blocks ('block 1'..)."""
    if isinstance(model, ClassifierModel):
        return [f"block {block}" for block in range(1, classifier_service.block_count(model) + 1)]
    return [name for name in service.layer_choices(model) if not name.endswith(" 0")]


def setting_updates(model, decoder_layer=None, encoder_layer=None, head=None, skip=None):
    """The layer, head and skip choices of a model, keeping the given values it has (else: last layers, mean, first;
    none where the model has none, as a classifier has no decoder)."""
    encoders, decoders, heads = attention_service.layer_counts(model)
    head_choices = [(text.MEAN_OF_HEADS, MEAN_OF_HEADS), *((str(number), number) for number in range(heads))]
    skips = skip_choices(model)
    return (gr.update(choices=list(range(1, decoders + 1)),
                      value=decoder_layer if decoder_layer in range(1, decoders + 1) else decoders or None),
            gr.update(choices=list(range(1, encoders + 1)),
                      value=encoder_layer if encoder_layer in range(1, encoders + 1) else encoders or None),
            gr.update(choices=head_choices, value=head if head in range(heads) else MEAN_OF_HEADS),
            gr.update(choices=skips, value=skip if skip in skips else next(iter(skips), None)))


def enlarged(image: Image.Image) -> Image.Image:
    """The encoder map POINT_MAP_WIDTH wide, so that the page shows it without enlarging it (clicks land right)."""
    return image.resize((POINT_MAP_WIDTH, max(1, round(image.height * POINT_MAP_WIDTH / image.width))), Image.Resampling.BILINEAR)


def placeholder() -> str:
    """A blank image file, where an action has no picture to show."""
    return as_file(Image.new("RGB", PLACEHOLDER_SIZE, "white"))


def pick_point(view, event: gr.SelectData):
    """A click on the encoder map: the point in the view's pixels, and the attention action to run there."""
    if view is None:
        return gr.skip(), gr.skip(), gr.skip()
    scale = picture(view[0]).width / POINT_MAP_WIDTH
    return round(event.index[0] * scale), round(event.index[1] * scale), "attention"


def card(state: LinkState, view, query_maps, point_map, after, changes, panels, classifier: bool = False,
         cls_token: bool = True) -> Card:
    """The tab's card: the maps (a classifier's: each block's CLS attention and the rollout, or without a CLS token
    what each patch receives and a point's window), or the images before and after an intervention (a
    classifier's: a block skipped) with its reconstructions."""
    if state.action == "attention" and classifier:
        title, caption = ((text.CLASSIFIER_ATTENTION_CARD_TITLE, text.ROLLOUT) if cls_token else
                          (text.WINDOWED_ATTENTION_CARD_TITLE, text.POINT_IN_WINDOW))
        rows = [[annotated_panel(view, text.CARD_CLASSIFIER_INPUT), *gallery_panels(query_maps)],
                [CardPanel(picture(point_map), caption)]]
        return Card(title, rows)
    if state.action == "attention":
        rows = [[annotated_panel(view, text.CARD_INPUT), *gallery_panels(query_maps)],
                [CardPanel(picture(point_map), text.POINT_MAP)]]
        return Card(text.attend_card_title("attention"), rows)
    captions = (text.CARD_CLASSIFIER_INPUT, text.CARD_BLOCK_SKIPPED) if classifier else (text.ATTEND_VIEW, text.AFTER)
    rows = [[annotated_panel(view, captions[0]), annotated_panel(after, captions[1])]]
    if panels:
        rows.append(gallery_panels(panels))
    table = changes.values.tolist() if changes is not None else []
    title = text.CLASSIFIER_SKIP_CARD_TITLE if classifier else text.attend_card_title(state.action)
    return Card(title, rows, text.changes_line(table))


def build(page: Page) -> Tab:
    """The attention-and-interventions tab (api /attend): one GPU call per action, no inverters needed."""
    models = page.catalogue.models

    def run(first, second, model_name, action, decoder_layer, encoder_layer, head, point_x, point_y, object_value,
            at, rows, columns, skip, progress=gr.Progress()):
        model_name = page.model_name(model_name)
        image = read_image(first, page.max_megapixels)
        link = LinkState(model=model_name, tab="attend", example=example_name(first), action=action)
        if action == "attention" and page.is_classifier(model_name):
            return (*show_classifier_attention(model_name, image, head, encoder_layer, point_x, point_y, link, progress),
                    to_query(link))
        if action == "attention":
            return (*show_attention(model_name, image, decoder_layer, encoder_layer, head, point_x, point_y, link, progress),
                    to_query(link))
        progress(0.2, desc=text.INTERVENING)
        if action == "skip" and page.is_classifier(model_name):
            return *skip_classifier_block(model_name, image, skip, link), to_query(link)
        model_name = page.detector_name(model_name, "intervention")
        if action == "transplant":
            if second is None:
                raise gr.Error(text.NO_SECOND_IMAGE, print_exception=False)
            target = read_image(second, page.max_megapixels)
            object_index = whole_number(object_value, text.TRANSPLANT_OBJECT)
            offset = (whole_number(rows, text.MOVE_ROWS), whole_number(columns, text.MOVE_COLUMNS))
            result = page.gpu.transplant(model_name, image, target, object_index, at, offset)
            link.second, link.object, link.at, (link.rows, link.columns) = example_name(second), object_index, at, offset
            view = annotated(result.source)
        else:
            stage, layer = chosen(skip, skip_choices(models[model_name]), text.SKIP_LAYER).split()
            result = page.gpu.skip_layer(model_name, image, stage, int(layer))
            link.skip = skip
            view = annotated(result.before)
        summary = "\n\n".join(line for line in (result.summary, result.note) if line)
        return (view, [], placeholder(), annotated(result.after, numbered=False), change_rows(result.changes), summary,
                gallery(result.panels), to_query(link))

    def show_attention(model_name, image, decoder_layer, encoder_layer, head, point_x, point_y, link, progress):
        """The attention action's outputs (all but the link, whose settings it fills in)."""
        model = models[model_name]
        encoders, decoders, heads = attention_service.layer_counts(model)
        decoder_layer = chosen(whole_number(decoder_layer, text.DECODER_LAYER), range(1, decoders + 1), text.DECODER_LAYER)
        encoder_layer = chosen(whole_number(encoder_layer, text.ENCODER_LAYER), range(1, encoders + 1), text.ENCODER_LAYER)
        head = chosen(whole_number(head, text.HEAD), range(MEAN_OF_HEADS, heads), text.HEAD)
        head = None if head == MEAN_OF_HEADS else head
        point = None if point_x is None or point_y is None else (whole_number(point_x, text.POINT_X),
                                                                 whole_number(point_y, text.POINT_Y))
        progress(0.2, desc=text.ATTENDING)
        result = page.gpu.attention(model_name, image, decoder_layer, encoder_layer, head, point)
        link.decoder_layer = None if decoder_layer == decoders else decoder_layer
        link.encoder_layer = None if encoder_layer == encoders else encoder_layer
        link.head, (link.point_x, link.point_y) = head, (None, None) if point is None else result.point
        found = result.input.detections
        summary = text.detections_found(found) if found else text.no_detection(model.detector.threshold)
        maps = [(as_file(shown.image), shown.caption) for shown in result.query_maps]
        return (annotated(result.input), maps, as_file(enlarged(result.point_map.image)), (placeholder(), []), [],
                f"{summary}\n\n{result.point_map.caption}.", [])

    def show_classifier_attention(model_name, image, head, block, point_x, point_y, link, progress):
        """The attention action's outputs for a classifier: each block's map in the gallery (the CLS token's
        attention, or without one what each patch receives), beside the image the rollout or the attention from a
        point in the chosen block (all but the link, whose settings it fills in)."""
        model = models[model_name]
        blocks, _, heads = attention_service.layer_counts(model)
        head = chosen(whole_number(head, text.HEAD), range(MEAN_OF_HEADS, heads), text.HEAD)
        link.head = None if head == MEAN_OF_HEADS else head
        windowed = not classifier_service.has_cls_token(model)
        point = None
        if windowed:
            block = chosen(whole_number(block, text.ENCODER_LAYER), range(1, blocks + 1), text.ENCODER_LAYER)
            point = None if point_x is None or point_y is None else (whole_number(point_x, text.POINT_X),
                                                                     whole_number(point_y, text.POINT_Y))
        progress(0.2, desc=text.ATTENDING)
        result = page.gpu.classifier_attention(model_name, image, link.head, block if windowed else None, point)
        if windowed:
            link.encoder_layer = None if block == blocks else block
            link.point_x, link.point_y = (None, None) if point is None else result.point
        classes = text.classes_found(result.input.classes, result.input.present, model.classifier.multi_label)
        maps = [(as_file(shown), caption) for shown, caption in result.layer_maps]
        shown, caption = result.map
        about = text.WINDOWED_ATTENTION.format(layer=text.ENCODER_LAYER) if windowed else text.CLASSIFIER_ATTENTION
        return (unannotated(result.input.view), maps, as_file(enlarged(shown)), (placeholder(), []), [],
                f"{classes}\n\n{about} The map: {caption}.", [])

    def skip_classifier_block(model_name, image, skip, link):
        """The skip action's outputs for a classifier: its classes with the block skipped against the unmodified
        run's, and the changed representation's reconstructions (all but the link, whose skip it fills in)."""
        _, block = chosen(skip, skip_choices(models[model_name]), text.SKIP_LAYER).split()
        result = page.gpu.classifier_skip(model_name, image, int(block))
        link.skip = skip
        changes = {"headers": text.CLASS_SKIP_HEADERS, "data": text.class_change_rows(result.changes)}
        summary = text.classifier_skip_summary(skip, result.after.classes, result.after.present,
                                               models[model_name].classifier.multi_label)
        return (unannotated(result.before.view), [], placeholder(), unannotated(result.after.view), changes,
                "\n\n".join(line for line in (summary, result.note) if line), gallery(result.panels))

    def shows_cls_token(state: LinkState) -> bool:
        """Whether a result's model (a classifier) has a CLS token, for its attention card."""
        model = models[state.model or page.catalogue.default]
        return not page.shows_classifier(state) or classifier_service.has_cls_token(model)

    def run_attention_example(first, model_name):
        """An attention example row: the example's model's last layers, the mean of the heads, the centre."""
        encoders, decoders, _ = attention_service.layer_counts(models[model_name])
        return run(first, None, model_name, "attention", decoders, encoders, MEAN_OF_HEADS, None, None, 0, "encoder", 0, 0,
                   "encoder 1")

    def run_intervention_example(first, second, model_name, action, object_value, at, skip):
        return run(first, second, model_name, action, None, None, MEAN_OF_HEADS, None, None, object_value, at, 0, 0, skip)

    default = models[page.catalogue.default]
    decoder_choice, encoder_choice, head_choice, skip_choice = setting_updates(default)
    with gr.Tab(text.ATTEND_TAB, id="attend"):
        gr.Markdown(text.ATTEND_ABOUT, elem_classes=CONTROLS)
        with gr.Row():
            with gr.Column(scale=1, elem_classes=CONTROLS):
                first = image_input(page.catalogue.limits.max_upload_mb, text.FIRST_IMAGE, elem_id="attend-first")
                second = image_input(page.catalogue.limits.max_upload_mb, text.SECOND_IMAGE, elem_id="attend-second")
                action = gr.Radio(text.ATTEND_ACTIONS, value="attention", label=text.ACTION)
                with gr.Accordion(text.ATTENTION_SETTINGS, open=False):
                    decoder_layer = gr.Dropdown(label=text.DECODER_LAYER, allow_custom_value=True, **_fields(decoder_choice))
                    encoder_layer = gr.Dropdown(label=text.ENCODER_LAYER, allow_custom_value=True, **_fields(encoder_choice))
                    head = gr.Dropdown(label=text.HEAD, allow_custom_value=True, **_fields(head_choice))
                    with gr.Row():
                        point_x = gr.Number(label=text.POINT_X, precision=0, minimum=0)
                        point_y = gr.Number(label=text.POINT_Y, precision=0, minimum=0)
                with gr.Accordion(text.TRANSPLANT_SETTINGS, open=False):
                    object_index = gr.Number(0, label=text.TRANSPLANT_OBJECT, precision=0, minimum=0)
                    at = gr.Radio(text.TRANSPLANT_STAGE_CHOICES, value="encoder", label=text.TRANSPLANT_STAGE)
                    with gr.Row():
                        rows = gr.Number(0, label=text.MOVE_ROWS, precision=0)
                        columns = gr.Number(0, label=text.MOVE_COLUMNS, precision=0)
                skip = gr.Dropdown(label=text.SKIP_LAYER, allow_custom_value=True, **_fields(skip_choice))
                button = gr.Button(text.RUN_ATTEND, variant="primary")
            with gr.Column(scale=2, elem_classes=SHOWN):
                view = gr.AnnotatedImage(label=text.ATTEND_VIEW, height=300)
                summary = gr.Markdown()
                with gr.Row():
                    point_map = gr.Image(label=text.POINT_MAP, format="png", height=300, interactive=False,
                                         elem_id="attend-point-map")
                    after = gr.AnnotatedImage(label=text.AFTER, height=300)
                changes = gr.Dataframe(headers=text.INTERVENTION_HEADERS, label=text.CHANGES, interactive=False,
                                       max_height=240, elem_id="attend-changes")
        query_maps = results_gallery(text.QUERY_MAPS, elem_id="attend-query-maps")
        panels = results_gallery(text.INTERVENTION_GALLERY, elem_id="attend-gallery")
        inputs = [first, second, page.model, action, decoder_layer, encoder_layer, head, point_x, point_y, object_index,
                  at, rows, columns, skip]
        outputs = [view, query_maps, point_map, after, changes, summary, panels, page.link]
        examples(run_attention_example, [first, page.model], outputs, [[str(path), example_model(path)] for path in page.examples],
                 label=text.ATTENTION_EXAMPLES, elem_id="attend-attention-examples")
        interventions = intervention_rows(page)
        examples(run_intervention_example, [first, second, page.model, action, object_index, at, skip], outputs,
                 interventions, label=text.INTERVENTION_EXAMPLES, elem_id="attend-intervention-examples",
                 example_labels=[text.intervention_example_label(*row) for row in interventions])
        card_maker(page, "attend", [view, query_maps, point_map, after, changes, panels],
                   lambda state, *values: card(state, *values, classifier=page.shows_classifier(state),
                                               cls_token=shows_cls_token(state)))
    button.click(run, inputs, outputs, api_name="attend", api_visibility=PAGE_ONLY, **MODEL_EVENT)
    point_map.select(pick_point, view, [point_x, point_y, action], api_visibility="private").then(
        run, inputs, outputs, api_visibility="private", **MODEL_EVENT)
    view.select(pick_object, None, object_index, api_visibility="private")
    page.model.change(lambda name, *values: setting_updates(models[name], *values),
                      [page.model, decoder_layer, encoder_layer, head, skip], [decoder_layer, encoder_layer, head, skip],
                      api_visibility="private")

    def restore(state: LinkState, image: str | None, model_name: str):
        second_image = str(EXAMPLES_DIR / state.second) if image and state.second else None
        head_value = MEAN_OF_HEADS if state.head is None else state.head
        decoder, encoder, heads, skips = setting_updates(models[model_name], state.decoder_layer, state.encoder_layer,
                                                         head_value, state.skip)
        return (image or gr.skip(), second_image or gr.skip(), state.action, decoder, encoder, heads, state.point_x,
                state.point_y, state.object, state.at, state.rows, state.columns, skips)

    controls = [first, second, action, decoder_layer, encoder_layer, head, point_x, point_y, object_index, at, rows,
                columns, skip]
    return Tab("attend", controls, restore, run, inputs, outputs)


def intervention_rows(page: Page) -> list[list]:
    """Example interventions for every model: TRANSPLANT_EXAMPLE at the encoder output and at the backbone map
    (when the page has both images), and a layer skipped on each example image."""
    names = {path.name: path for path in page.examples}
    first, second, object_index = TRANSPLANT_EXAMPLE
    rows = []
    if first in names and second in names:
        rows += [[str(names[first]), str(names[second]), example_model(names[first]), "transplant", object_index, at,
                  "encoder 1"] for at in ("encoder", "backbone")]
    return rows + [[str(path), str(path), example_model(path), "skip", 0, "encoder", "decoder 1"] for path in page.examples]


def _fields(update: dict) -> dict:
    """A gr.update's choices and value, as a component's constructor takes them."""
    return {"choices": update["choices"], "value": update["value"]}
